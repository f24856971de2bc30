//! Test certificates, made at test time with the `openssl` command in a private temporary directory:
//! a CA, a server certificate for 127.0.0.1 and localhost, a client certificate, and a second CA that
//! signed none of them (for "unknown issuer"). Used by the TLS tests with a `Mosquitto` TLS listener.
//! Nothing here is secret or committed: the keys live only as long as the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::processes::{check_output, run_cmd, CLIENT_TIMEOUT};

/// A CA and the certificates it signed, as PEM files.
pub struct Certs {
    dir: TempDir,
}

impl Certs {
    /// Makes the certificates (ECDSA P-256, valid for two days). Panics if `openssl` fails.
    pub fn make() -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("xymon-mqtt-certs-")
            .tempdir()
            .expect("create certs temp dir");
        let certs = Certs { dir };
        certs.make_ca("ca", "xymon-mqtt test CA");
        certs.make_ca("other-ca", "some other CA");
        certs.signed(
            "server",
            "localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n",
        );
        certs.signed(
            "client",
            "xymon-mqtt",
            "extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n",
        );
        certs
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate that signed the server and client certificates.
    pub fn ca(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// A CA certificate that signed neither.
    pub fn other_ca(&self) -> PathBuf {
        self.file("other-ca.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.file("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.file("server.key")
    }

    pub fn client_cert(&self) -> PathBuf {
        self.file("client.pem")
    }

    pub fn client_key(&self) -> PathBuf {
        self.file("client.key")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A self-signed CA `<name>.pem` with its key `<name>.key`.
    fn make_ca(&self, name: &str, cn: &str) {
        let d = self.dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={cn}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }

    /// `<name>.pem` and `<name>.key`, signed by `ca.pem`, with the X.509 extensions `ext`.
    fn signed(&self, name: &str, cn: &str, ext: &str) {
        let d = self.dir.path();
        std::fs::write(d.join(format!("{name}.ext")), ext).expect("write extensions");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
}

/// Runs `openssl ARGS` in `dir`; panics with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args);
    let out = run_cmd(&mut cmd, None, CLIENT_TIMEOUT);
    check_output(&cmd, &out);
}
