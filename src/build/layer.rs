//! Layers and images that webdock writes itself instead of asking the
//! engine to commit a container.
//!
//! A committed layer carries the time each file was written and the
//! container's own metadata, so the same inputs never give the same image
//! twice. Here a layer is a tar webdock makes: entries sorted by path, owned
//! by root, every time set to one given instant, parents listed. Its digest
//! (the diff id) is then a function of the content alone, and so is the image
//! id, which is the digest of a config webdock also writes (sorted keys). The
//! engine gets both through its image load endpoint, which skips every layer
//! it already has without reading it: a rebuild sends only what changed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::engine::ImageLayers;

/// One entry of a layer, its path relative to `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

/// A layer tar and its digest (`sha256:<hex>`).
#[derive(Debug, Clone)]
pub struct Layer {
    pub tar: Vec<u8>,
    pub diff_id: String,
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Owner of an entry: (uid, gid).
pub type Owner = (u64, u64);

/// Writes the nodes as a normalised tar: sorted, root-owned, every time
/// `mtime`, every missing parent added as a 0755 directory.
pub fn write(nodes: BTreeMap<String, Node>, mtime: u64) -> std::io::Result<Layer> {
    write_owned(
        nodes.into_iter().map(|(p, n)| (p, (n, (0, 0)))).collect(),
        mtime,
    )
}

/// [`write`] with each entry's owner kept (the dependency layer: `/data`
/// belongs to the app user).
pub fn write_owned(nodes: BTreeMap<String, (Node, Owner)>, mtime: u64) -> std::io::Result<Layer> {
    let mut all = nodes;
    let parents: BTreeSet<String> = all
        .keys()
        .flat_map(|p| {
            let parts: Vec<&str> = p.split('/').collect();
            (1..parts.len())
                .map(|i| parts[..i].join("/"))
                .collect::<Vec<_>>()
        })
        .collect();
    for p in parents {
        all.entry(p).or_insert((Node::Dir { mode: 0o755 }, (0, 0)));
    }
    let mut tar = tar::Builder::new(Vec::new());
    for (path, (node, (uid, gid))) in &all {
        let mut h = tar::Header::new_gnu();
        h.set_uid(*uid);
        h.set_gid(*gid);
        h.set_mtime(mtime);
        match node {
            Node::Dir { mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                tar.append_data(&mut h, format!("{path}/"), std::io::empty())?;
            }
            Node::File { mode, data } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                tar.append_data(&mut h, path, data.as_slice())?;
            }
            Node::Symlink { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, path, target)?;
            }
        }
    }
    let tar = tar.into_inner()?;
    let diff_id = format!("sha256:{}", sha256_hex(&tar));
    Ok(Layer { tar, diff_id })
}

/// The nodes of a tar (as the engine's archive endpoint returns it), under
/// `prefix`: times, owners and order are dropped here and set by [`write`].
pub fn read(tar_bytes: &[u8], prefix: &str) -> std::io::Result<BTreeMap<String, Node>> {
    Ok(read_owned(tar_bytes, prefix)?
        .into_iter()
        .map(|(p, (n, _))| (p, n))
        .collect())
}

/// [`read`] keeping each entry's owner. A hard link becomes a copy of the
/// file it links to (earlier in the same tar); devices and fifos, which no
/// build step makes, are left out.
pub fn read_owned(
    tar_bytes: &[u8],
    prefix: &str,
) -> std::io::Result<BTreeMap<String, (Node, Owner)>> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(tar_bytes);
    let clean = |p: &str| {
        p.trim_end_matches('/')
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string()
    };
    for e in ar.entries()? {
        let mut e = e?;
        let path = clean(&e.path()?.to_string_lossy());
        if path.is_empty() || path == "." {
            continue;
        }
        let full = format!("{prefix}{path}");
        let h = e.header();
        let mode = h.mode()? & 0o7777;
        let owner = (h.uid()?, h.gid()?);
        let node = match h.entry_type() {
            tar::EntryType::Directory => Node::Dir { mode },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::new();
                e.read_to_end(&mut data)?;
                Node::File { mode, data }
            }
            tar::EntryType::Symlink => Node::Symlink {
                target: e
                    .link_name()?
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            },
            tar::EntryType::Link => {
                let to = e
                    .link_name()?
                    .map(|l| format!("{prefix}{}", clean(&l.to_string_lossy())))
                    .unwrap_or_default();
                match out.get(&to) {
                    Some((Node::File { data, .. }, _)) => Node::File {
                        mode,
                        data: data.clone(),
                    },
                    _ => {
                        return Err(std::io::Error::other(format!(
                            "{full}: a hard link to {to}, which is not a file before it"
                        )))
                    }
                }
            }
            _ => continue,
        };
        out.insert(full, (node, owner));
    }
    Ok(out)
}

/// The first entry of a tar that may be cut short after it: its kind,
/// mode and owner (a directory's metadata from [`crate::engine::Docker::download_head`]).
pub fn first_entry(tar_bytes: &[u8]) -> std::io::Result<Option<(tar::EntryType, u32, Owner)>> {
    let mut ar = tar::Archive::new(tar_bytes);
    let Some(e) = ar.entries()?.next() else {
        return Ok(None);
    };
    let e = e?;
    let h = e.header();
    Ok(Some((
        h.entry_type(),
        h.mode()? & 0o7777,
        (h.uid()?, h.gid()?),
    )))
}

/// A layer on top of the parent, and what `docker history` says about it.
pub struct NewLayer<'a> {
    pub layer: &'a Layer,
    pub created_by: String,
    pub comment: String,
}

/// The image config: the parent's layers and history, the new layers, and
/// the runtime settings. Keys sorted, so the same inputs give the same bytes.
pub fn config(
    parent: &ImageLayers,
    layers: &[NewLayer],
    env: &[String],
    labels: &BTreeMap<String, String>,
    created: &str,
    last_step: &str,
) -> Vec<u8> {
    let runtime = json!({
        "Env": env,
        "Entrypoint": ["/init"],
        "WorkingDir": "/app",
        "Labels": labels,
    });
    config_with(parent, layers, runtime, created, Some(last_step))
}

/// An image config of the parent's layers plus `layers`, `runtime` as its
/// `config`, every new history entry and the image itself `created` then,
/// and `last_step` (if any) as a history entry that made no layer.
pub fn config_with(
    parent: &ImageLayers,
    layers: &[NewLayer],
    runtime: serde_json::Value,
    created: &str,
    last_step: Option<&str>,
) -> Vec<u8> {
    let mut diff_ids = parent.diff_ids.clone();
    // The parent's history, one entry per layer when the counts match
    // (imports and commits), else only the entries that made a layer.
    let one_each = parent.history.len() == parent.diff_ids.len();
    let mut history: Vec<serde_json::Value> = parent
        .history
        .iter()
        .map(|h| {
            let when = time::OffsetDateTime::from_unix_timestamp(h.created)
                .map(crate::clock::rfc3339)
                .unwrap_or_default();
            let mut v = json!({ "created": when, "created_by": h.created_by });
            if !h.comment.is_empty() {
                v["comment"] = json!(h.comment);
            }
            if !one_each && h.size == 0 {
                v["empty_layer"] = json!(true);
            }
            v
        })
        .collect();
    for l in layers {
        diff_ids.push(l.layer.diff_id.clone());
        history
            .push(json!({ "created": created, "created_by": l.created_by, "comment": l.comment }));
    }
    if let Some(last) = last_step {
        history.push(json!({ "created": created, "created_by": last, "empty_layer": true }));
    }
    let v = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": runtime,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    });
    serde_json::to_vec(&v).expect("a json value serializes")
}

/// The archive the engine's load endpoint takes: `manifest.json`, the
/// config, and the files of the new layers. The parent's layers are named
/// in the manifest but not sent: the engine has them.
pub fn archive(
    config: &[u8],
    repo_tag: &str,
    all_diff_ids: &[String],
    new: &[&Layer],
) -> std::io::Result<Vec<u8>> {
    let id = sha256_hex(config);
    let layer_path = |d: &str| format!("{}/layer.tar", d.trim_start_matches("sha256:"));
    let manifest = json!([{
        "Config": format!("{id}.json"),
        "RepoTags": [repo_tag],
        "Layers": all_diff_ids.iter().map(|d| layer_path(d)).collect::<Vec<_>>(),
    }]);
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, data)
    };
    add("manifest.json", &serde_json::to_vec(&manifest)?)?;
    add(&format!("{id}.json"), config)?;
    for l in new {
        add(&layer_path(&l.diff_id), &l.tar)?;
    }
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &str) -> Node {
        Node::File {
            mode: 0o644,
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_layer_depends_on_content_only_and_lists_its_parents() {
        let a = BTreeMap::from([
            ("app/b.py".to_string(), file("b")),
            ("app/x/a.py".to_string(), file("a")),
        ]);
        let l1 = write(a.clone(), 7).unwrap();
        let l2 = write(a.into_iter().rev().collect(), 7).unwrap();
        assert_eq!(l1.diff_id, l2.diff_id);
        let back = read(&l1.tar, "").unwrap();
        let names: Vec<&str> = back.keys().map(String::as_str).collect();
        assert_eq!(names, ["app", "app/b.py", "app/x", "app/x/a.py"]);
        assert_eq!(back["app/x"], Node::Dir { mode: 0o755 });
        let changed = BTreeMap::from([("app/b.py".to_string(), file("c"))]);
        assert_ne!(write(changed, 7).unwrap().diff_id, l1.diff_id);
    }

    #[test]
    fn the_archive_names_every_layer_but_carries_only_the_new_ones() {
        let l = write(BTreeMap::from([("a".to_string(), file("a"))]), 0).unwrap();
        let parent = ImageLayers {
            repo_digests: vec![],
            id: "sha256:p".into(),
            diff_ids: vec!["sha256:base".into()],
            labels: Default::default(),
            history: vec![],
        };
        let nl = NewLayer {
            layer: &l,
            created_by: "webdock: app".into(),
            comment: String::new(),
        };
        let cfg = config(
            &parent,
            &[nl],
            &[],
            &BTreeMap::new(),
            "2026-01-01T00:00:00Z",
            "x",
        );
        let ids = vec!["sha256:base".to_string(), l.diff_id.clone()];
        let ar = archive(&cfg, "r:t", &ids, &[&l]).unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(ar.as_slice()).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.contains(&format!("{}/layer.tar", &l.diff_id[7..])));
        assert!(!names.iter().any(|n| n.starts_with("base")));
    }
}
