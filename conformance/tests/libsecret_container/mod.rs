//! The libsecret test container (`ci/build-test-image.sh`), started through testcontainers,
//! shared by the targets that run against it: the Secret Service backend
//! (`container_secret_service.rs`) and the keyring-core Secret Service stores
//! (`keyring_store_*_container.rs`).
//!
//! One container serves a whole run: its entrypoint (ci/images/libsecret/entrypoint.sh)
//! starts a session bus listening on TCP port 55556 with ANONYMOUS auth and an unlocked
//! gnome-keyring on it, and prints `SECRET SERVICE READY`. The port is published on
//! 127.0.0.1 only: anyone who reaches that bus owns the keyring, which is why nothing but
//! test data ever goes in it.

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use testcontainers::{
    Container, GenericImage, ImageExt,
    bollard::models::PortBinding,
    core::{IntoContainerPort, WaitFor},
    runners::SyncRunner,
};

/// The image `ci/build-test-image.sh` builds, unless overridden (same variable there).
const DEFAULT_IMAGE: &str = "identity-cache-libsecret:1";
const IMAGE_ENV: &str = "IDENTITY_CACHE_LIBSECRET_IMAGE";
/// The D-Bus TCP port inside the container (ci/images/libsecret/bus.conf).
const BUS_PORT: u16 = 55556;
/// What the entrypoint prints once the Secret Service answers.
const READY: &str = "SECRET SERVICE READY";
/// The label every test container carries, so that `ci/container-tests.sh` can remove
/// what a killed run left behind; its value is the test target.
pub const LABEL: &str = "identity-cache.test";

/// The image to run: `IDENTITY_CACHE_LIBSECRET_IMAGE`, or the one the build script makes.
pub fn image() -> String {
    std::env::var(IMAGE_ENV).unwrap_or_else(|_| DEFAULT_IMAGE.to_owned())
}

/// Whether this run is CI's, where a missing engine or image fails rather than skips.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Checks that a Docker engine answers and the image is there, with the docker CLI
/// (testcontainers would try to pull a missing image from a registry instead).
pub fn check_engine_and_image(image: &str) -> Result<(), String> {
    let engine = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .output();
    match engine {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("no Docker here (the docker CLI is not installed)".into());
        }
        Err(e) => return Err(format!("cannot run the docker CLI: {e}")),
        Ok(out) if !out.status.success() => {
            return Err(format!(
                "no Docker engine reachable (docker version: {})",
                first_line(&out.stderr)
            ));
        }
        Ok(_) => {}
    }
    let inspect = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the docker CLI: {e}"))?;
    if !inspect.status.success() {
        return Err(format!(
            "the image {image} is absent; build it with ci/build-test-image.sh \
             (ci/container-tests.sh builds it and runs these tests)"
        ));
    }
    Ok(())
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// A running container and the address of its bus on the host.
pub struct Started {
    pub container: Container<GenericImage>,
    pub image: String,
    pub address: String,
    pub ready_after: Duration,
}

/// Starts a container of `image` for the test target `target` and waits for its
/// readiness line.
pub fn start(image: &str, target: &str) -> Result<Started, String> {
    let (name, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let begin = Instant::now();
    let container = GenericImage::new(name, tag)
        .with_exposed_port(BUS_PORT.tcp())
        .with_wait_for(WaitFor::message_on_stdout(READY))
        .with_label(LABEL, target)
        .with_startup_timeout(Duration::from_secs(60))
        // The bus takes anyone: publish it on loopback only, not on every interface as
        // testcontainers' publish-all would.
        .with_host_config_modifier(|host| {
            host.publish_all_ports = Some(false);
            host.port_bindings = Some(HashMap::from([(
                format!("{BUS_PORT}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )]));
        })
        .start()
        .map_err(|e| format!("the container did not start: {e}"))?;
    let port = container
        .get_host_port_ipv4(BUS_PORT.tcp())
        .map_err(|e| format!("the bus port is not published: {e}"))?;
    Ok(Started {
        container,
        image: image.to_owned(),
        address: format!("tcp:host=127.0.0.1,port={port}"),
        ready_after: begin.elapsed(),
    })
}
