//! OCI images for the function store's tests and benchmarks: image
//! layouts built here, and a real registry (Debian's `docker-registry`,
//! Distribution 2.8) started on loopback with images pushed to it by
//! `skopeo`.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const WASM_LAYER: &str = "application/wasm";
/// An `ow-precompiler` zip as a layer.
pub const ZIP_LAYER: &str = "application/zip";
pub const TAR_GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const COMPONENT_LAYER: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";

pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn put_blob(dir: &Path, bytes: &[u8]) -> std::io::Result<Value> {
    let digest = digest(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    std::fs::write(blobs.join(&digest[7..]), bytes)?;
    Ok(json!({ "digest": digest, "size": bytes.len() }))
}

/// A tar (gzipped) of `files`.
pub fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *bytes).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// Add image `tag` to the OCI image layout `dir` (created if needed): one
/// layer of `media_type` holding `layer`, a config that suits it. Returns
/// the manifest's digest.
pub fn add_image(dir: &Path, tag: &str, media_type: &str, layer: &[u8]) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let (config, config_type) = match media_type {
        TAR_GZIP_LAYER => (
            json!({"architecture": "wasm", "os": "wasip1", "config": {},
                   "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}})
            .to_string(),
            "application/vnd.oci.image.config.v1+json",
        ),
        _ => ("{}".to_owned(), "application/vnd.wasm.config.v0+json"),
    };
    let mut config_desc = put_blob(dir, config.as_bytes())?;
    config_desc["mediaType"] = json!(config_type);
    let mut layer_desc = put_blob(dir, layer)?;
    layer_desc["mediaType"] = json!(media_type);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    })
    .to_string();
    let mut manifest_desc = put_blob(dir, manifest.as_bytes())?;
    manifest_desc["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    manifest_desc["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    let index_path = dir.join("index.json");
    let mut index: Value = std::fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({"schemaVersion": 2, "manifests": []}));
    let manifests = index["manifests"]
        .as_array_mut()
        .ok_or_else(|| std::io::Error::other("index.json has no manifests"))?;
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != tag);
    manifests.push(manifest_desc.clone());
    std::fs::write(index_path, index.to_string())?;
    Ok(manifest_desc["digest"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `docker-registry serve` on loopback with its storage in a temp dir.
pub struct Registry {
    child: Child,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// # Errors
    /// When `docker-registry` cannot be started or does not listen.
    pub fn start() -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )?;
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::other(format!(
                    "docker-registry is needed (`./dev.sh test` installs it: apt-get install docker-registry): {e}"
                ))
            })?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::other("docker-registry did not listen"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            host: format!("127.0.0.1:{port}"),
            _dir: dir,
        })
    }

    /// `skopeo copy` image `tag` of `layout` to `<host>/<name>:<tag>`;
    /// the reference pushed.
    ///
    /// # Errors
    /// When skopeo is missing or fails.
    pub fn push(&self, layout: &Path, tag: &str, name: &str) -> Result<String, String> {
        let reference = format!("{}/{name}:{tag}", self.host);
        let out = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{reference}"))
            .output()
            .map_err(|e| {
                format!(
                    "skopeo is needed (`./dev.sh test` installs it: apt-get install skopeo): {e}"
                )
            })?;
        match out.status.success() {
            true => Ok(reference),
            false => Err(format!(
                "skopeo copy failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
