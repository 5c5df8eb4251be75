use super::*;
use std::time::Duration;

#[test]
fn djob_script_quotes_every_argument_and_never_uses_a_shell() {
    let d = Djob {
        name: "billing".into(),
        command: vec![
            "python".into(),
            "a \"b\" \\c".into(),
            "$(rm -rf /); `x`".into(),
        ],
        stop_grace: Duration::from_secs(1),
        env: Default::default(),
        settle: Duration::from_secs(1),
        heartbeat: None,
        logging: None,
        hosts: vec![],
        failover: Default::default(),
    };
    let s = djob_run_script(&d);
    assert!(s.starts_with("#!/usr/bin/execlineb -P\n"));
    assert!(
        s.contains(r#""python" "a \"b\" \\c" "$(rm -rf /); `x`""#),
        "{s}"
    );
    assert!(!s.contains("/bin/sh"));
}
