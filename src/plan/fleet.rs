//! The decisions of a release across hosts ("all of them flip, or none
//! does"): given every host's outcome of a phase, what next.

/// A host's outcome of one phase: `Err` carries the reason, naming it.
pub type HostResult = (String, Result<(), String>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPrepare {
    /// Every host's new color is healthy: flip them all.
    Flip,
    /// At least one failed: remove the new colors everywhere, flip nothing.
    Abort { failed: Vec<String> },
}

pub fn after_prepare(results: &[HostResult]) -> AfterPrepare {
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(h, _)| h.clone())
        .collect();
    if failed.is_empty() {
        AfterPrepare::Flip
    } else {
        AfterPrepare::Abort { failed }
    }
}

/// One host's flip and verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlipOutcome {
    pub host: String,
    /// The link moved (even if the check through nginx then failed).
    pub flipped: bool,
    /// The flip and the check through this host's nginx.
    pub result: Result<(), String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFlip {
    Done,
    /// Flip these hosts back (every one that flipped) and fail, naming
    /// the hosts that failed.
    FlipBack {
        hosts: Vec<String>,
        failed: Vec<String>,
    },
}

pub fn after_flip(outcomes: &[FlipOutcome]) -> AfterFlip {
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.host.clone())
        .collect();
    if failed.is_empty() {
        return AfterFlip::Done;
    }
    AfterFlip::FlipBack {
        hosts: outcomes
            .iter()
            .filter(|o| o.flipped)
            .map(|o| o.host.clone())
            .collect(),
        failed,
    }
}

/// The mixed-version window: from the first host's flip to the last's.
pub fn flip_window(offsets_ms: &[f64]) -> Option<f64> {
    let min = offsets_ms.iter().copied().reduce(f64::min)?;
    let max = offsets_ms.iter().copied().reduce(f64::max)?;
    Some(max - min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(h: &str) -> HostResult {
        (h.into(), Ok(()))
    }
    fn bad(h: &str) -> HostResult {
        (h.into(), Err(format!("{h}: health")))
    }
    fn f(h: &str, flipped: bool, ok: bool) -> FlipOutcome {
        FlipOutcome {
            host: h.into(),
            flipped,
            result: if ok { Ok(()) } else { Err("verify".into()) },
        }
    }

    #[test]
    fn prepare_all_or_nothing() {
        assert_eq!(
            after_prepare(&[ok("a"), ok("b"), ok("c")]),
            AfterPrepare::Flip
        );
        assert_eq!(
            after_prepare(&[ok("a"), bad("b"), bad("c")]),
            AfterPrepare::Abort {
                failed: vec!["b".into(), "c".into()]
            }
        );
    }

    #[test]
    fn every_flipped_host_flips_back_when_one_fails() {
        assert_eq!(
            after_flip(&[f("a", true, true), f("b", true, true)]),
            AfterFlip::Done
        );
        // b's verify failed after its flip; c could not even flip
        assert_eq!(
            after_flip(&[
                f("a", true, true),
                f("b", true, false),
                f("c", false, false)
            ]),
            AfterFlip::FlipBack {
                hosts: vec!["a".into(), "b".into()],
                failed: vec!["b".into(), "c".into()]
            }
        );
    }

    #[test]
    fn window_is_first_to_last() {
        assert_eq!(flip_window(&[3.0, 1.5, 9.25]), Some(7.75));
        assert_eq!(flip_window(&[]), None);
    }
}
