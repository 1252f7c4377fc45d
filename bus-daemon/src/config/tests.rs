use super::*;

#[test]
fn embedded_default() {
    let c = Config::default();
    assert!(c.auto_create);
    assert_eq!(c.shm_prefix, "shmbus");
    assert_eq!(c.defaults.geometry.capacity, 1024);
    assert!(c.topics.is_empty());
}

#[test]
fn declared_topics_and_errors_name_the_line() {
    let src = "[daemon]\nauto_create = false\n\n[[topic]]\nname = \"orders\"\ncapacity = 64\npublish = [\"uid:0\"]\n\n[[topic]]\nname = \"bad\"\ncapacity = 100\n";
    let e = Config::parse(src, "x.toml").unwrap_err();
    assert_eq!((e.line, e.column), (11, 1), "the key's line, not its table's (issue 11): {e}");
    assert!(e.message.contains("power of two") && e.to_string().starts_with("x.toml:11:1: "), "{e}");
    let e = Config::parse(
        "[defaults]

  capacity = 3
",
        "x.toml",
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (3, 3), "{e}");
    let e = Config::parse(
        "[defaults]
max_message = 1
publish = [\"uid:x\"]
",
        "x.toml",
    )
    .unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    let e = Config::parse(
        "[daemon]
  bogus = 1
",
        "x.toml",
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (2, 3), "toml's own span: {e}");
    let ok = Config::parse(&src.replace("100", "128"), "x.toml").unwrap();
    assert_eq!(ok.topics.len(), 2);
    assert_eq!(ok.topics[0].1.geometry.capacity, 64);
    assert!(!ok.auto_create);
}

#[test]
fn remove_unused_after_is_off_by_default_and_takes_a_duration() {
    assert_eq!(Config::default().remove_unused_after, None);
    let c = Config::parse("[daemon]\nremove_unused_after = \"1h\"\n", "u.toml").unwrap();
    assert_eq!(c.remove_unused_after, Some(Duration::from_secs(3600)));
    assert_eq!(parse_duration("k", "250ms"), Ok(Duration::from_millis(250)));
    for bad in ["", "1", "h", "0s", "1.5h", "-1s", "1 h", "10y"] {
        let e = Config::parse(&format!("[daemon]\nremove_unused_after = {bad:?}\n"), "u.toml").unwrap_err();
        assert_eq!(e.line, 2, "{bad:?}: {e}");
    }
}

#[test]
fn return_idle_after_defaults_to_five_minutes_and_never_turns_it_off() {
    assert_eq!(Config::default().return_idle_after, Some(RETURN_IDLE_AFTER));
    let c = Config::parse("[daemon]\nreturn_idle_after = \"2s\"\n", "r.toml").unwrap();
    assert_eq!(c.return_idle_after, Some(Duration::from_secs(2)));
    assert_eq!(Config::parse("[daemon]\nreturn_idle_after = \"never\"\n", "r.toml").unwrap().return_idle_after, None);
    let e = Config::parse("\n[daemon]\nreturn_idle_after = \"soon\"\n", "r.toml").unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.to_string().contains("return_idle_after"), "{e}");
}

#[test]
fn socket_dir_mode_is_never_shared_writable() {
    assert_eq!(Config::default().socket_dir_mode, 0o700);
    assert_eq!(Config::parse("[daemon]\nsocket_dir_mode = 0o755\n", "d.toml").unwrap().socket_dir_mode, 0o755);
    for bad in ["0o777", "0o770", "0o1700", "0o500"] {
        let e = Config::parse(&format!("[daemon]\nsocket_dir_mode = {bad}\n"), "d.toml").unwrap_err();
        assert_eq!(e.line, 2, "{bad}: {e}");
    }
}

#[test]
fn syntax_and_unknown_keys() {
    let e = Config::parse("[daemon]\nsocket = \n", "y.toml").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    let e = Config::parse("[daemon]\n\nbogus = 1\n", "y.toml").unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    let e = Config::parse("[daemon]\nmetrics = \"0.0.0.0:9\"\n", "y.toml").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn limits_and_admin() {
    let e = Config::parse("[defaults]\npayload_budget = 1099511627776\n", "z.toml").unwrap_err();
    assert!(e.message.contains("max_topic_bytes = 268435456") && e.message.contains("needs 1099511"), "{e}");
    let src = "[daemon]\nshm_budget = 6000000\n[[topic]]\nname = \"a\"\n[[topic]]\nname = \"b\"\n";
    let e = Config::parse(src, "z.toml").unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    assert!(e.message.contains("shm_budget = 6000000"), "{e}");
    let c = Config::parse("[defaults]\nadmin = [\"uid:7\"]\n[daemon]\nmax_connections = 3\n", "z.toml").unwrap();
    assert_eq!(c.defaults.policy.admin, vec![Principal::Uid(7)]);
    assert_eq!(c.limits.max_connections, 3);
    let spec = TopicSpec { max_message: Some(1 << 20), payload_budget: Some(64 << 10), ..TopicSpec::default() };
    let e = c.topic_settings("x", Some(&spec)).unwrap_err();
    assert!(e.contains("payload_budget = 65536"), "{e}");
    let spec = TopicSpec { subscribe: Some("uid:7".into()), redeliver: Some(false), ..TopicSpec::default() };
    let s = c.topic_settings("x", Some(&spec)).unwrap();
    assert_eq!((s.policy.subscribe.clone(), s.redeliver), (vec![Principal::Uid(7)], false));
    assert_eq!(s.policy.publish, vec![Principal::Anyone], "unset keys come from [defaults]");
    assert_eq!(c.undeclared_settings(s.requested.as_deref()).policy, s.policy, "kept for reloads");
    let bad = TopicSpec { gate: Some("alice".into()), ..TopicSpec::default() };
    assert!(c.topic_settings("x", Some(&bad)).unwrap_err().starts_with("gate: invalid principal"));
    let gone = TopicSpec { publish: Some("user:no-such-user-here".into()), ..TopicSpec::default() };
    assert!(c.undeclared_settings(Some(&gone)).policy.publish.is_empty(), "closed, not opened, when unresolvable");
    let e = Config::parse("[defaults]\ncapacity = 33554432\n", "z.toml").unwrap_err();
    assert!(e.message.contains("2^24") && !e.message.contains("corrupt"), "{e}");
}
