//! Registry-less delivery without resending what the target already has.
//!
//! `webdock ship` streams `GET /images/{name}/get` from one engine into
//! `POST /images/load` of another. A plain `docker save | docker load`
//! sends every layer, although the target's `load` never reads the file of
//! a layer whose chain ID it already has (moby `image/tarexport/load.go`:
//! `lss.Get(chainID)` first, `loadLayer` only when that fails). So the
//! stream is filtered on the fly: a `layer.tar` the target has is dropped,
//! everything else passes byte for byte, and nothing is buffered beyond
//! one tar header and the small per-layer `json` files.
//!
//! Which layer a directory of the legacy save format (Docker 20.10:
//! `<v1-id>/json`, `<v1-id>/layer.tar`, `manifest.json` last, entries in
//! lexical order) holds is not written anywhere before its `layer.tar`, so
//! it is proven instead: the directory's v1 id is the sha256 of its `json`
//! with `layer_id` (the chain ID) and `parent` added (moby
//! `image/v1/imagev1.go` `CreateID`), and the `json` comes before the
//! `layer.tar` in the stream. A layer whose position is not proven this way
//! is sent. The OCI layout of newer engines names a layer blob by its diff
//! ID, which needs no proof. All of it is pure: the engine module feeds it.

use std::collections::{BTreeMap, HashSet};

use sha2::{Digest, Sha256};

fn sha256_hex(b: &[u8]) -> String {
    let d = Sha256::digest(b);
    d.iter().map(|x| format!("{x:02x}")).collect()
}

/// Chain IDs of an image's layers: the first is its diff ID, each next one
/// `sha256(parent_chain + " " + diff_id)`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let c = match out.last() {
            None => d.clone(),
            Some(p) => format!("sha256:{}", sha256_hex(format!("{p} {d}").as_bytes())),
        };
        out.push(c);
    }
    out
}

/// Every chain an engine holds, from the diff IDs of each of its images.
pub fn known_chains<'a>(images: impl IntoIterator<Item = &'a [String]>) -> HashSet<String> {
    images.into_iter().flat_map(chain_ids).collect()
}

/// Which layers of an image need not be sent: the target has their chain,
/// and no layer that is sent is a duplicate of it (the save format turns
/// a repeated diff ID into a symlink to the first copy's file).
pub fn skippable(diff_ids: &[String], target: &HashSet<String>) -> Vec<bool> {
    let chains = chain_ids(diff_ids);
    let mut skip: Vec<bool> = chains.iter().map(|c| target.contains(c)).collect();
    for i in 0..diff_ids.len() {
        if !skip[i] {
            for j in 0..diff_ids.len() {
                if diff_ids[j] == diff_ids[i] {
                    skip[j] = false;
                }
            }
        }
    }
    skip
}

/// The position in `chains` of the legacy save directory whose `json` this
/// is, proven by recomputing its v1 id; None when no position matches.
pub fn v1_position(json: &[u8], chains: &[String]) -> Option<usize> {
    type Raw = Box<serde_json::value::RawValue>;
    let mut m: BTreeMap<String, Raw> = serde_json::from_slice(json).ok()?;
    let id: String = serde_json::from_str(m.remove("id")?.get()).ok()?;
    if let Some(p) = m.remove("parent") {
        let p: String = serde_json::from_str(p.get()).ok()?;
        let p = serde_json::value::to_raw_value(&format!("sha256:{p}")).ok()?;
        m.insert("parent".into(), p);
    }
    // Below the top layer, the v1 image was hashed before its `os` was set.
    let mut without_os = m.clone();
    without_os.remove("os");
    for fields in [&without_os, &m] {
        for (i, chain) in chains.iter().enumerate() {
            let mut text = String::from("{");
            let layer_id = serde_json::to_string(chain).ok()?;
            let mut keys: Vec<(&str, &str)> =
                fields.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
            keys.push(("layer_id", &layer_id));
            keys.sort();
            for (n, (k, v)) in keys.iter().enumerate() {
                if n > 0 {
                    text.push(',');
                }
                text.push_str(&serde_json::to_string(k).ok()?);
                text.push(':');
                text.push_str(v);
            }
            text.push('}');
            if sha256_hex(text.as_bytes()) == id {
                return Some(i);
            }
        }
    }
    None
}

mod filter;
pub use filter::{FilterError, LayerSeen, SaveFilter};

#[cfg(test)]
mod tests;
