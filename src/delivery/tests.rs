//! The filter against streams shaped like a real Docker 20.10 save.

use super::*;

// A real Docker 20.10 save of a 10-layer image (tests/fixtures/save-20.10):
// the per-layer `json` of positions 0, 1 and 9 (the top) and the diff IDs.
const DIFFS: &str = include_str!("../../tests/fixtures/save-20.10/diff_ids.json");
const L0: &str = include_str!("../../tests/fixtures/save-20.10/layer0.json");
const L1: &str = include_str!("../../tests/fixtures/save-20.10/layer1.json");
const L9: &str = include_str!("../../tests/fixtures/save-20.10/layer9-top.json");

fn diffs() -> Vec<String> {
    serde_json::from_str(DIFFS).unwrap()
}
fn dir_of(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[test]
fn v1_ids_of_a_real_save_are_recomputed() {
    let chains = chain_ids(&diffs());
    assert_eq!(chains[0], diffs()[0]);
    assert_eq!(v1_position(L0.as_bytes(), &chains), Some(0));
    assert_eq!(v1_position(L1.as_bytes(), &chains), Some(1));
    assert_eq!(v1_position(L9.as_bytes(), &chains), Some(9));
    // one byte changed and the proof fails: the layer is then sent
    let forged = L1.replace("1970", "1971");
    assert_eq!(v1_position(forged.as_bytes(), &chains), None);
    assert_eq!(v1_position(b"not json", &chains), None);
}

#[test]
fn only_chains_the_target_has_are_skipped() {
    let d = diffs();
    let target = known_chains([&d[..3]]);
    let skip = skippable(&d, &target);
    assert_eq!(skip.iter().filter(|s| **s).count(), 3);
    assert!(skip[0] && skip[2] && !skip[3]);
    // same diff ID on a different parent is a different chain
    let other = [d[1].clone()];
    assert!(!skippable(&d, &known_chains([&other[..]]))[1]);
    // a layer repeated later (a symlink to the first copy) keeps its file
    let mut rep = d[..4].to_vec();
    rep.push(d[1].clone());
    let skip = skippable(&rep, &known_chains([&d[..3]]));
    assert_eq!(skip, vec![true, false, true, false, false]);
}

/// A save stream shaped like Docker 20.10's: lexical order, json before
/// layer.tar, manifest last.
fn save_stream(layers: &[(&str, &[u8])], long_names: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: String, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    };
    let mut sorted: Vec<_> = layers.to_vec();
    sorted.sort_by_key(|(j, _)| dir_of(j));
    for (json, data) in sorted {
        let dir = if long_names {
            format!("{}/{}", "x".repeat(120), dir_of(json))
        } else {
            dir_of(json)
        };
        add(format!("{dir}/VERSION"), b"1.0");
        add(format!("{dir}/json"), json.as_bytes());
        add(format!("{dir}/layer.tar"), data);
    }
    add("manifest.json".into(), b"[]");
    b.into_inner().unwrap()
}

fn entries(t: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(t);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            (p, v)
        })
        .collect()
}

fn filter(input: &[u8], skip: Vec<bool>, chunk: usize) -> (Vec<u8>, SaveFilter) {
    let mut f = SaveFilter::new(diffs(), skip);
    let mut out = Vec::new();
    for c in input.chunks(chunk) {
        f.push(c, &mut out).unwrap();
    }
    f.finish().unwrap();
    (out, f)
}

#[test]
fn the_filter_drops_exactly_the_layers_the_target_has() {
    let big = vec![7u8; 5000];
    let input = save_stream(&[(L0, &big), (L1, b"layer one"), (L9, b"top")], false);
    let mut skip = vec![false; 10];
    skip[0] = true;
    for chunk in [1, 7, 512, 513, 100_000] {
        let (out, f) = filter(&input, skip.clone(), chunk);
        let got = entries(&out);
        let want: Vec<_> = entries(&input)
            .into_iter()
            .filter(|(p, _)| p != &format!("{}/layer.tar", dir_of(L0)))
            .collect();
        assert_eq!(got, want, "chunk {chunk}");
        assert_eq!(f.bytes_in, input.len() as u64);
        assert_eq!(f.bytes_out, out.len() as u64);
        assert!(input.len() - out.len() >= 5000);
        let dropped: Vec<_> = f.layers.iter().filter(|l| !l.sent).collect();
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].position, Some(0));
        assert_eq!(f.layers.len(), 3);
    }
    // nothing to skip: the stream passes byte for byte
    let (out, _) = filter(&input, vec![false; 10], 333);
    assert_eq!(out, input);
}

#[test]
fn long_names_are_followed_and_dropped_with_their_extension_header() {
    let input = save_stream(&[(L0, b"zero"), (L1, b"one")], true);
    let mut skip = vec![false; 10];
    skip[1] = true;
    let (out, f) = filter(&input, skip, 100);
    let names: Vec<String> = entries(&out).into_iter().map(|e| e.0).collect();
    assert!(names
        .iter()
        .any(|n| n.ends_with(&format!("{}/layer.tar", dir_of(L0)))));
    assert!(!names
        .iter()
        .any(|n| n.ends_with(&format!("{}/layer.tar", dir_of(L1)))));
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(f.layers.iter().filter(|l| !l.sent).count(), 1);
}

#[test]
fn oci_layout_blobs_are_named_by_diff_id() {
    let d = diffs();
    let mut b = tar::Builder::new(Vec::new());
    for (i, diff) in d.iter().enumerate().take(2) {
        let mut h = tar::Header::new_ustar();
        let data = vec![i as u8; 700];
        h.set_size(data.len() as u64);
        h.set_cksum();
        let path = format!("blobs/sha256/{}", diff.trim_start_matches("sha256:"));
        b.append_data(&mut h, path, &data[..]).unwrap();
    }
    let input = b.into_inner().unwrap();
    let mut skip = vec![false; 10];
    skip[0] = true;
    let (out, f) = filter(&input, skip, 64);
    assert_eq!(entries(&out).len(), 1);
    assert_eq!(
        f.layers[0],
        LayerSeen {
            position: Some(0),
            bytes: 700,
            sent: false
        }
    );
}

#[test]
fn a_cut_stream_is_an_error() {
    let input = save_stream(&[(L0, b"zero")], false);
    let mut f = SaveFilter::new(diffs(), vec![false; 10]);
    let mut out = Vec::new();
    f.push(&input[..1000], &mut out).unwrap();
    assert!(f.finish().is_err());
}
