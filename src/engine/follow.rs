//! Following the output of a container webdock may not have started: a
//! release command left running by an earlier, killed webdock is waited
//! for with its output streamed, line by line, from its first line.

use futures_util::StreamExt;

use super::{api, not_found, Docker, Result};

impl Docker {
    /// Calls `on_line` for each line the container printed since it
    /// started, then for each new one, until it stops.
    pub(super) async fn follow_lines(
        &self,
        name: &str,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let mut s = self.follow_logs(name, true, "all");
        let mut partial = String::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(chunk) => {
                    partial.push_str(&String::from_utf8_lossy(chunk.as_ref()));
                    while let Some(i) = partial.find('\n') {
                        on_line(partial[..i].trim_end_matches('\r'));
                        partial.drain(..=i);
                    }
                }
                Err(e) if not_found(&e) => break,
                Err(e) => return Err(api("logs", name)(e)),
            }
        }
        if !partial.is_empty() {
            on_line(&partial);
        }
        Ok(())
    }
}
