//! Certificates for TLS tests, made per test run with the openssl command line: a CA, server
//! certificates for the names a test chooses, client certificates; and the `[*.tls]` sections
//! of the bridge's and the pusher's configuration files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{cleanup_dir, find_program, fresh_dir};

/// A certificate authority of its own (EC P-256), in a fresh directory removed on drop unless
/// the test failed. Two `TestCa`s never trust each other's certificates.
pub struct TestCa {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A certificate and its private key (PEM files), signed by a [`TestCa`].
#[derive(Clone, Debug)]
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name` (its certificate's common name).
    pub fn new(name: &str) -> TestCa {
        let dir = fresh_dir("tls");
        let cert = dir.join("ca.pem");
        let key = dir.join("ca.key");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        TestCa { dir, cert, key }
    }

    /// The CA's certificate (what a client's `ca_file` names to trust it).
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// A server certificate valid for `names` (DNS names and IP addresses, as subjectAltName).
    pub fn server(&self, stem: &str, names: &[&str]) -> Certificate {
        let san: Vec<String> = names
            .iter()
            .map(|n| {
                if n.parse::<std::net::IpAddr>().is_ok() {
                    format!("IP:{n}")
                } else {
                    format!("DNS:{n}")
                }
            })
            .collect();
        self.issue(
            stem,
            names.first().copied().unwrap_or("server"),
            &format!(
                "subjectAltName={}\nextendedKeyUsage=serverAuth\n",
                san.join(",")
            ),
        )
    }

    /// A client certificate for `common_name`.
    pub fn client(&self, stem: &str, common_name: &str) -> Certificate {
        self.issue(stem, common_name, "extendedKeyUsage=clientAuth\n")
    }

    fn issue(&self, stem: &str, common_name: &str, extensions: &str) -> Certificate {
        let ext = self.dir.join(format!("{stem}.ext"));
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                 {extensions}"
            ),
        )
        .expect("write the extensions file");
        let (key, csr, cert) = (
            format!("{stem}.key"),
            format!("{stem}.csr"),
            format!("{stem}.pem"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={common_name}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &self.cert.display().to_string(),
                "-CAkey",
                &self.key.display().to_string(),
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "3",
                "-extfile",
                &ext.display().to_string(),
            ],
        );
        Certificate {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
        }
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        cleanup_dir(&self.dir, "test CA");
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(find_program("openssl"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run openssl");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `[*.tls]` section; `None` fields are left out of the file (the binary's default).
#[derive(Clone, Debug, Default)]
pub struct TlsEntry {
    pub mode: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl TlsEntry {
    /// `mode` trusting `ca` (no client certificate).
    pub fn trusting(mode: &str, ca: &TestCa) -> TlsEntry {
        TlsEntry {
            mode: Some(mode.into()),
            ca_file: Some(ca.cert_path().to_path_buf()),
            ..TlsEntry::default()
        }
    }

    /// `mode` alone, with no files.
    pub fn mode(mode: &str) -> TlsEntry {
        TlsEntry {
            mode: Some(mode.into()),
            ..TlsEntry::default()
        }
    }

    /// With `certificate` shown as the client certificate.
    pub fn with_client(mut self, certificate: &Certificate) -> TlsEntry {
        self.cert_file = Some(certificate.cert.clone());
        self.key_file = Some(certificate.key.clone());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.mode.is_none()
            && self.ca_file.is_none()
            && self.cert_file.is_none()
            && self.key_file.is_none()
    }

    /// The section under `[name]` (e.g. `source.tls`), or nothing when every field is `None`.
    pub fn section(&self, name: &str) -> String {
        if self.is_empty() {
            return String::new();
        }
        format!("\n[{name}]\n{self}")
    }
}

impl fmt::Display for TlsEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = |v: &str| serde_json::to_string(v).expect("strings serialize");
        if let Some(mode) = &self.mode {
            writeln!(f, "mode = {}", quote(mode))?;
        }
        for (key, path) in [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
        ] {
            if let Some(path) = path {
                writeln!(f, "{key} = {}", quote(&path.display().to_string()))?;
            }
        }
        Ok(())
    }
}
