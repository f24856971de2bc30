//! Links librrd statically, so the daemon carries only librrd's create/update/info code.
//!
//! `librrd.so` pulls in librrd's whole graph stack (cairo, pango, fontconfig, freetype, glib, ICU and
//! their X11 dependencies) as soon as the program starts: about 8 MB of resident pages in every
//! `xymon-mqtt` process, although the daemon never draws in-process (dashboard graphs come from an
//! `rrdtool graph` child, as Xymon's own graphs come from showgraph.cgi). Debian's librrd-dev ships
//! `librrd.a`; linking it means the linker takes only the objects the daemon calls, whose one outside
//! dependency is glib.
//!
//! How: the `rrd-sys` crate asks for `-lrrd`. A search directory of our own that holds only a link to
//! `librrd.a` comes first on the linker's path, so `-lrrd` resolves to the archive there.
//! `XYMON_MQTT_LIBRRD=shared` keeps the shared library (for a system without `librrd.a`). A build with
//! `-C link-dead-code` (some coverage tools) would pull in librrd's graph objects and fail to link
//! statically; use `shared` there.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=XYMON_MQTT_LIBRRD");
    println!("cargo::rustc-check-cfg=cfg(librrd_static)");
    match std::env::var("XYMON_MQTT_LIBRRD").as_deref() {
        Ok("shared") => return,
        Ok("static") | Err(_) => {}
        Ok(other) => {
            panic!("XYMON_MQTT_LIBRRD={other:?}: use \"static\" (the default) or \"shared\"")
        }
    }
    let libdir = pkg_config::get_variable("librrd", "libdir").unwrap_or_else(|e| {
        panic!("pkg-config cannot find librrd: install librrd-dev (packaging/install-deps.sh): {e}")
    });
    let archive = PathBuf::from(libdir).join("librrd.a");
    assert!(
        archive.is_file(),
        "{} is missing: install librrd-dev, or build with XYMON_MQTT_LIBRRD=shared",
        archive.display()
    );
    let dir =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("librrd-static");
    std::fs::create_dir_all(&dir).expect("create OUT_DIR/librrd-static");
    let link = dir.join("librrd.a");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&archive, &link).expect("link librrd.a into OUT_DIR");
    println!("cargo:rerun-if-changed={}", archive.display());
    // Our search path comes before the system's (where rrd-sys's pkg-config lookup found librrd.so), so the
    // linker's `-lrrd` finds the archive here first. The unit test `rrd::linking` checks the outcome.
    println!("cargo:rustc-link-search=native={}", dir.display());
    // librrd's update objects use glib (GList, GTree, GRegex); the archive does not say so itself.
    // The runtime library by its soname: librrd8 depends on it, and this needs no libglib2.0-dev.
    println!("cargo:rustc-link-lib=dylib:+verbatim=libglib-2.0.so.0");
    println!("cargo:rustc-cfg=librrd_static");
}
