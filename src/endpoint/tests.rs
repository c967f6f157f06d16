//! Unit tests of the endpoint choice: every variable, setting and partition.

use std::path::PathBuf;

use super::*;

fn inputs(env: &[(&str, &str)]) -> Inputs {
    Inputs {
        flag: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        profile: ProfileSettings::default(),
    }
}

fn url(i: &Inputs, partition: &str, region: &str) -> String {
    choose_endpoint(i, partition, region).unwrap().url
}

#[test]
fn the_default_follows_the_partition_fips_and_dual_stack() {
    let cases = [
        (
            "aws",
            "us-east-1",
            "",
            "",
            "https://rolesanywhere.us-east-1.amazonaws.com",
        ),
        (
            "aws",
            "us-east-1",
            "true",
            "",
            "https://rolesanywhere-fips.us-east-1.amazonaws.com",
        ),
        (
            "aws",
            "eu-west-1",
            "",
            "true",
            "https://rolesanywhere.eu-west-1.api.aws",
        ),
        (
            "aws",
            "us-east-2",
            "true",
            "true",
            "https://rolesanywhere-fips.us-east-2.api.aws",
        ),
        (
            "aws-cn",
            "cn-north-1",
            "",
            "",
            "https://rolesanywhere.cn-north-1.amazonaws.com.cn",
        ),
        (
            "aws-cn",
            "cn-north-1",
            "true",
            "",
            "https://rolesanywhere-fips.cn-north-1.amazonaws.com.cn",
        ),
        (
            "aws-cn",
            "cn-northwest-1",
            "",
            "true",
            "https://rolesanywhere.cn-northwest-1.api.amazonwebservices.com.cn",
        ),
        (
            "aws-cn",
            "cn-north-1",
            "TRUE",
            "True",
            "https://rolesanywhere-fips.cn-north-1.api.amazonwebservices.com.cn",
        ),
        (
            "aws-us-gov",
            "us-gov-west-1",
            "",
            "",
            "https://rolesanywhere.us-gov-west-1.amazonaws.com",
        ),
        (
            "aws-us-gov",
            "us-gov-west-1",
            "true",
            "",
            "https://rolesanywhere-fips.us-gov-west-1.amazonaws.com",
        ),
        (
            "aws-us-gov",
            "us-gov-east-1",
            "",
            "true",
            "https://rolesanywhere.us-gov-east-1.api.aws",
        ),
        (
            "aws-us-gov",
            "us-gov-east-1",
            "true",
            "true",
            "https://rolesanywhere-fips.us-gov-east-1.api.aws",
        ),
        (
            "aws-iso",
            "us-iso-east-1",
            "true",
            "",
            "https://rolesanywhere-fips.us-iso-east-1.c2s.ic.gov",
        ),
        (
            "aws-iso-b",
            "us-isob-east-1",
            "",
            "false",
            "https://rolesanywhere.us-isob-east-1.sc2s.sgov.gov",
        ),
        // An unknown partition id: the region's prefix, else aws.
        (
            "aws-future",
            "cn-north-1",
            "",
            "",
            "https://rolesanywhere.cn-north-1.amazonaws.com.cn",
        ),
        (
            "aws-future",
            "xx-east-1",
            "",
            "",
            "https://rolesanywhere.xx-east-1.amazonaws.com",
        ),
    ];
    for (partition, region, fips, dual, expected) in cases {
        let mut env = vec![];
        if !fips.is_empty() {
            env.push(("AWS_USE_FIPS_ENDPOINT", fips));
        }
        if !dual.is_empty() {
            env.push(("AWS_USE_DUALSTACK_ENDPOINT", dual));
        }
        assert_eq!(
            url(&inputs(&env), partition, region),
            expected,
            "{partition} {region} {fips} {dual}"
        );
    }
}

#[test]
fn the_reason_names_the_partition_and_the_settings() {
    let i = inputs(&[("AWS_USE_FIPS_ENDPOINT", "true")]);
    assert_eq!(
        choose_endpoint(&i, "aws-cn", "cn-north-1").unwrap().why,
        "default for partition aws-cn with FIPS (AWS_USE_FIPS_ENDPOINT)"
    );
    assert_eq!(
        choose_endpoint(&inputs(&[]), "aws", "us-east-1")
            .unwrap()
            .why,
        "default for partition aws"
    );
    let mut i = inputs(&[("AWS_USE_DUALSTACK_ENDPOINT", "true")]);
    i.profile = parse_profile("[profile p]\nuse_fips_endpoint = true\n", "p", "/c");
    assert_eq!(
        choose_endpoint(&i, "aws", "us-east-1").unwrap().why,
        "default for partition aws with FIPS (use_fips_endpoint of profile 'p' in /c) and dual-stack (AWS_USE_DUALSTACK_ENDPOINT)"
    );
}

#[test]
fn endpoint_urls_in_order_flag_service_variable_global_variable_services_profile() {
    let text = "[profile p]\nendpoint_url = https://profile.test\nservices = s\n\n[services s]\nrolesanywhere =\n  endpoint_url = https://services.test\nsts =\n  endpoint_url = https://sts.test\n";
    let mut i = inputs(&[
        (ENV_SERVICE_URL, "https://service-env.test"),
        ("AWS_ENDPOINT_URL", "https://global-env.test"),
    ]);
    i.profile = parse_profile(text, "p", "/c");
    i.flag = Some("https://flag.test".into());
    let mut seen = vec![];
    loop {
        let choice = choose_endpoint(&i, "aws", "us-east-1").unwrap();
        seen.push((choice.url.clone(), choice.why.clone()));
        if i.flag.take().is_some() {
            continue;
        }
        if i.env.remove(ENV_SERVICE_URL).is_some() || i.env.remove("AWS_ENDPOINT_URL").is_some() {
            continue;
        }
        if i.profile.service_endpoint_url.take().is_some()
            || i.profile.endpoint_url.take().is_some()
        {
            continue;
        }
        break;
    }
    let expected = [
        ("https://flag.test", "--endpoint"),
        ("https://service-env.test", "AWS_ENDPOINT_URL_ROLESANYWHERE"),
        ("https://global-env.test", "AWS_ENDPOINT_URL"),
        (
            "https://services.test",
            "endpoint_url of rolesanywhere in [services s] of profile 'p' in /c",
        ),
        ("https://profile.test", "endpoint_url of profile 'p' in /c"),
        (
            "https://rolesanywhere.us-east-1.amazonaws.com",
            "default for partition aws",
        ),
    ];
    let seen: Vec<(&str, &str)> = seen.iter().map(|(u, w)| (u.as_str(), w.as_str())).collect();
    assert_eq!(seen, expected);
}

#[test]
fn an_explicit_endpoint_wins_over_fips_and_dual_stack_and_says_so() {
    let mut i = inputs(&[
        ("AWS_USE_FIPS_ENDPOINT", "true"),
        ("AWS_ENDPOINT_URL", "https://e.test"),
    ]);
    let c = choose_endpoint(&i, "aws", "us-east-1").unwrap();
    assert_eq!(c.url, "https://e.test");
    assert_eq!(
        c.why,
        "AWS_ENDPOINT_URL (AWS_USE_FIPS_ENDPOINT ignored: an explicit endpoint wins)"
    );
    assert_eq!(c.from, "AWS_ENDPOINT_URL");
    i.flag = Some("http://127.0.0.1:1".into());
    assert_eq!(
        choose_endpoint(&i, "aws", "us-east-1").unwrap().from,
        "--endpoint"
    );
}

#[test]
fn ignore_configured_endpoint_urls_keeps_only_the_flag() {
    let mut i = inputs(&[
        ("AWS_ENDPOINT_URL", "https://e.test"),
        ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
    ]);
    assert_eq!(
        url(&i, "aws", "us-east-1"),
        "https://rolesanywhere.us-east-1.amazonaws.com"
    );
    i.env.remove("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    i.profile = parse_profile(
        "[default]\nignore_configured_endpoint_urls = true\n",
        "default",
        "/c",
    );
    assert_eq!(
        url(&i, "aws", "us-east-1"),
        "https://rolesanywhere.us-east-1.amazonaws.com"
    );
    i.flag = Some("https://flag.test".into());
    assert_eq!(url(&i, "aws", "us-east-1"), "https://flag.test");
}

#[test]
fn variables_win_over_the_profile_and_bad_values_are_errors() {
    let mut i = inputs(&[("AWS_USE_FIPS_ENDPOINT", "false")]);
    i.profile = parse_profile("[default]\nuse_fips_endpoint = true\n", "default", "/c");
    assert_eq!(
        url(&i, "aws", "us-east-1"),
        "https://rolesanywhere.us-east-1.amazonaws.com"
    );
    i.env.clear();
    assert_eq!(
        url(&i, "aws", "us-east-1"),
        "https://rolesanywhere-fips.us-east-1.amazonaws.com"
    );
    let e = choose_endpoint(
        &inputs(&[("AWS_USE_FIPS_ENDPOINT", "yes")]),
        "aws",
        "us-east-1",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "AWS_USE_FIPS_ENDPOINT is 'yes', not true or false"
    );
    let e = choose_endpoint(
        &inputs(&[("AWS_USE_DUALSTACK_ENDPOINT", "true")]),
        "aws-iso",
        "us-iso-east-1",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "AWS_USE_DUALSTACK_ENDPOINT is on, but partition aws-iso has no dual-stack endpoints"
    );
}

#[test]
fn the_profile_is_found_by_name_and_comments_are_skipped() {
    let text = "# c\n[default]\nuse_fips_endpoint=true\n[profile  web ]\n; c\nuse_dualstack_endpoint = true\nendpoint_url = https://w.test\n[profile other]\nendpoint_url = https://o.test\n";
    let d = parse_profile(text, "default", "/c");
    assert_eq!(d.use_fips_endpoint.as_deref(), Some("true"));
    assert_eq!(d.endpoint_url, None);
    let w = parse_profile(text, "web", "/c");
    assert_eq!(w.use_dualstack_endpoint.as_deref(), Some("true"));
    assert_eq!(w.endpoint_url.as_deref(), Some("https://w.test"));
    assert_eq!(w.use_fips_endpoint, None);
    assert_eq!(parse_profile(text, "absent", "/c").endpoint_url, None);
    // A services section the profile does not name is not used.
    let s = parse_profile(
        "[default]\n[services s]\nrolesanywhere =\n endpoint_url = https://s.test\n",
        "default",
        "/c",
    );
    assert_eq!(s.service_endpoint_url, None);
}

#[test]
fn the_config_file_is_aws_config_file_else_under_home() {
    let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        config_file_path(&env(&[("HOME", "/h")])),
        Some(PathBuf::from("/h/.aws/config"))
    );
    assert_eq!(
        config_file_path(&env(&[("HOME", "/h"), ("AWS_CONFIG_FILE", "~/c")])),
        Some(PathBuf::from("/h/c"))
    );
    assert_eq!(config_file_path(&env(&[])), None);
}
