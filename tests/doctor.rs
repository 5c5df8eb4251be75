//! `webdock doctor` checks the nginx that actually serves: the config the
//! running nginx master loaded (its `-c`), not the machine's default
//! `/etc/nginx` (issue 10 item 6: right after `scripts/demo`, whose nginx
//! runs with `-c` its own file, doctor reported a missing include).

mod common;
use common::*;

fn doctor(p: &Project, json: bool) -> (Option<i32>, String) {
    let o = if json {
        p.webdock(&["doctor", "--json"])
    } else {
        p.webdock(&["doctor"])
    };
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn doctor_reads_the_config_the_running_nginx_loaded() {
    ensure_image("1.0.0");
    let mut p = Project::new("doc", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    let conf = p.nginx.as_ref().unwrap().dir.join("nginx.conf");
    let want = p.live_link_path().join("nginx.sock").display().to_string();

    let (code, out) = doctor(&p, false);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("-c {}) proxies to {want}", conf.display())),
        "names the serving nginx and its config: {out}"
    );
    let (code, out) = doctor(&p, true);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("doctor --json is JSON");
    assert_eq!(v["problems"], 0, "{v}");

    // The serving nginx without the include: doctor names it, exits 1.
    p.nginx = None;
    let bare = Nginx::start(&p.path().join("bare"), "", "");
    let (code, out) = doctor(&p, false);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("does not proxy to {want}"))
            && out.contains(&bare.dir.join("nginx.conf").display().to_string()),
        "names the missing include and the config it checked: {out}"
    );
    assert!(out.contains("fix: webdock nginx-snippet"), "{out}");

    // [proxy] nginx_conf names the file outright.
    let cfg = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(
        &p.config,
        format!("{cfg}\n[proxy]\nnginx_conf = \"{}\"\n", conf.display()),
    )
    .unwrap();
    let (code, out) = doctor(&p, false);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "([proxy] nginx_conf {}) proxies to",
            conf.display()
        )),
        "{out}"
    );
}
