//! The time zone cron reads the crontab in.
//!
//! A container's clock zone is UTC unless told otherwise, so a crontab
//! written for office hours in Amsterdam silently ran an hour or two off.
//! The cron container gets `[cron] timezone`, or by default the host's own
//! zone (`/etc/timezone`, else the target of the `/etc/localtime` link), as
//! `WEBDOCK_TIMEZONE`; the image's `/init` points `/etc/localtime` at it and
//! exports `TZ` (the zone data is in the base image: tzdata).

use std::path::Path;

/// A zone name as in the tz database: `Europe/Amsterdam`, `UTC`,
/// `America/Argentina/Buenos_Aires`, `Etc/GMT+5`. Checked for shape here;
/// the image refuses a zone it has no data for (the container exits 2).
pub fn check(zone: &str) -> Result<(), String> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
    };
    if zone.len() > 64 || !zone.split('/').all(ok_part) {
        return Err("is not a time zone name like Europe/Amsterdam".into());
    }
    Ok(())
}

/// The host's zone from the contents of `/etc/timezone` or the target of
/// `/etc/localtime` (pure, for tests); UTC when neither names one.
pub fn zone_from(etc_timezone: Option<&str>, localtime_target: Option<&Path>) -> String {
    if let Some(z) = etc_timezone.map(str::trim).filter(|z| check(z).is_ok()) {
        return z.to_string();
    }
    if let Some(t) = localtime_target {
        let s = t.to_string_lossy();
        if let Some((_, z)) = s.split_once("zoneinfo/") {
            let z = z.trim_start_matches("posix/").trim_start_matches("right/");
            if check(z).is_ok() {
                return z.to_string();
            }
        }
    }
    "UTC".into()
}

/// The zone this host runs in.
pub fn host_zone() -> String {
    let tz = std::fs::read_to_string("/etc/timezone").ok();
    let link = std::fs::read_link("/etc/localtime").ok();
    zone_from(tz.as_deref(), link.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names() {
        for z in [
            "Europe/Amsterdam",
            "UTC",
            "Etc/GMT+5",
            "America/Argentina/Buenos_Aires",
        ] {
            assert_eq!(check(z), Ok(()), "{z}");
        }
        for z in [
            "",
            "../etc/passwd",
            "Europe/",
            "/UTC",
            "Europe/Am sterdam",
            "a\0b",
        ] {
            assert!(check(z).is_err(), "{z:?}");
        }
    }

    #[test]
    fn the_host_zone_comes_from_etc_timezone_or_the_localtime_link() {
        assert_eq!(
            zone_from(Some("Europe/Amsterdam\n"), None),
            "Europe/Amsterdam"
        );
        let l = Path::new("/usr/share/zoneinfo/Asia/Kolkata");
        assert_eq!(zone_from(None, Some(l)), "Asia/Kolkata");
        assert_eq!(zone_from(Some("garbage here"), Some(l)), "Asia/Kolkata");
        assert_eq!(
            zone_from(None, Some(Path::new("../zoneinfo/posix/Etc/UTC"))),
            "Etc/UTC"
        );
        assert_eq!(zone_from(None, None), "UTC");
    }
}
