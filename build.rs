// Rebuild when the image files that are compiled into the binary change
// (include_dir only tracks files that already existed).
fn main() {
    println!("cargo:rerun-if-changed=images");
    println!("cargo:rerun-if-changed=dockerfiles");
}
