use super::*;

fn paths(cfg: &Config) -> Vec<String> {
    let wheels = tempfile::tempdir().unwrap();
    context_entries(cfg, wheels.path(), String::new())
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect()
}

/// Issue 16 item 6: with the app reached through a symlink and the env
/// file named by its real path (or the other way round), a lexical
/// comparison let the secrets into a layer.
#[test]
fn env_file_reached_through_a_symlinked_app_dir_stays_out_of_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs_err::create_dir_all(real.join(".git")).unwrap();
    fs_err::write(real.join(".git/config"), "x").unwrap();
    fs_err::write(real.join("requirements.txt"), "").unwrap();
    fs_err::write(real.join("app.env"), "SECRET=1\n").unwrap();
    fs_err::write(real.join("webdock.toml"), "").unwrap();
    fs_err::write(real.join("views.py"), "").unwrap();
    std::os::unix::fs::symlink(&real, tmp.path().join("link")).unwrap();
    let link = tmp.path().join("link");
    for (cfg_at, app, env) in [
        (&link, link.display().to_string(), real.join("app.env")),
        (&real, link.display().to_string(), real.join("app.env")),
        (&real, real.display().to_string(), link.join("app.env")),
        (&link, ".".to_string(), real.join("app.env")),
    ] {
        let text = format!(
            "project = \"p\"\napp = \"{app}\"\nenv_file = \"{}\"\n",
            env.display()
        );
        let cfg = Config::parse(&cfg_at.join("webdock.toml"), &text).unwrap();
        let p = paths(&cfg);
        assert!(p.contains(&"app/views.py".to_string()), "{p:?}");
        for never in ["app/app.env", "app/webdock.toml", "app/.git/config"] {
            assert!(
                !p.contains(&never.to_string()),
                "{never} in the context (config at {}, app {app}, env {}): {p:?}",
                cfg_at.display(),
                env.display()
            );
        }
    }
}
