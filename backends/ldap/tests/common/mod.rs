//! A throwaway OpenLDAP `slapd` for tests: its own temp directory, a free loopback port, an
//! mdb database for `dc=example,dc=org` with the `memberof`, `refint` and `ppolicy` overlays and
//! the scimd schema, and a watchdog that stops it (and removes its directory) when the test
//! process exits, even if the process dies without running destructors.
//!
//! `scripts/ensure-slapd` installs slapd. Without it the tests fail (they never skip: a green
//! run must mean the backend was tested against a real directory). The server's end-to-end
//! tests include this file too (`#[path = "../../backends/ldap/tests/common/mod.rs"]`).

#![allow(dead_code)]

use scimd_backend_ldap::LdapConfig;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The suffix of the test directory.
pub const SUFFIX: &str = "dc=example,dc=org";
/// The administrator DN.
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
const ROOT_PW: &str = "test-admin-secret";

/// A running slapd.
pub struct Slapd {
    /// The temp directory holding config, database and password file.
    pub dir: PathBuf,
    /// The loopback port.
    pub port: u16,
    /// `ldap://127.0.0.1:<port>`.
    pub url: String,
    /// `ldaps://127.0.0.1:<port>` when started with TLS.
    pub ldaps_url: Option<String>,
    watchdog: Option<Child>,
}

fn slapd_bin() -> PathBuf {
    PathBuf::from("/usr/sbin/slapd")
}

fn require_slapd() {
    if !slapd_bin().exists() {
        panic!(
            "OpenLDAP slapd is not installed (CI={}): run scripts/ensure-slapd (as root) first",
            std::env::var("CI").unwrap_or_default()
        );
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// The lossless-mode schema, found from this crate's tests and from those of other crates of
/// the workspace that include this file (the server's end-to-end tests).
fn scimd_schema() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        here.join("schema/scimd.schema"),
        here.join("../backends/ldap/schema/scimd.schema"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .expect("backends/ldap/schema/scimd.schema")
}

fn config_text(dir: &Path, hashed_pw: &str, tls: bool) -> String {
    let schema = scimd_schema();
    let tls = if tls {
        format!(
            "TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n",
            d = dir.display()
        )
    } else {
        String::new()
    };
    format!(
        r#"{tls}include   /etc/ldap/schema/core.schema
include   /etc/ldap/schema/cosine.schema
include   /etc/ldap/schema/inetorgperson.schema
include   {schema}
pidfile   {dir}/slapd.pid
argsfile  {dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload refint
moduleload ppolicy
loglevel  none

database  mdb
maxsize   1073741824
suffix    "{SUFFIX}"
rootdn    "{ROOT_DN}"
rootpw    {hashed_pw}
directory {dir}/data
index     objectClass eq
index     uid,cn,mail eq,sub
index     entryUUID eq
index     member,memberOf eq
# memberOf on members, kept in sync with groupOfNames/member
overlay   memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
# member DNs follow renames and deletes; a group losing its last member keeps the empty DN
overlay   refint
refint_attributes member
refint_nothing ""
# pwdAccountLockedTime (SCIM active) and hashing of clear-text userPassword writes
overlay   ppolicy
ppolicy_hash_cleartext
"#,
        schema = schema.display(),
        dir = dir.display(),
    )
}

impl Slapd {
    /// Starts a new slapd, seeded with the suffix entry. Panics when that is impossible.
    pub fn start() -> Slapd {
        Slapd::start_inner(false)
    }

    /// Starts a slapd that also offers StartTLS and `ldaps://`, with a certificate for
    /// 127.0.0.1 issued by a throwaway CA (`<dir>/ca.pem`).
    pub fn start_with_tls() -> Slapd {
        Slapd::start_inner(true)
    }

    fn start_inner(tls: bool) -> Slapd {
        require_slapd();
        let dir = std::env::temp_dir().join(format!(
            "scimd-ldap-test-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("data")).expect("create slapd dir");
        std::fs::write(dir.join("bind-password"), format!("{ROOT_PW}\n")).expect("pw file");
        let hashed = Command::new("/usr/sbin/slappasswd")
            .args(["-s", ROOT_PW])
            .output()
            .expect("run slappasswd");
        let hashed = String::from_utf8_lossy(&hashed.stdout).trim().to_string();
        if tls {
            make_certificates(&dir);
        }
        std::fs::write(dir.join("slapd.conf"), config_text(&dir, &hashed, tls)).expect("conf");
        let check = Command::new("/usr/sbin/slaptest")
            .args(["-Q", "-u", "-f"])
            .arg(dir.join("slapd.conf"))
            .output()
            .expect("run slaptest");
        assert!(
            check.status.success(),
            "slaptest rejected the config: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let mut s = Slapd {
            dir,
            port: 0,
            url: String::new(),
            ldaps_url: tls.then(|| format!("ldaps://127.0.0.1:{}", free_port())),
            watchdog: None,
        };
        s.launch(false);
        s.seed();
        s
    }

    /// Starts slapd on this instance's directory (a new port on the first start, the same
    /// port on restarts), under a watchdog shell that kills it when the test process is gone.
    fn launch(&mut self, keep_port: bool) {
        for _ in 0..5 {
            if self.port == 0 {
                self.port = free_port();
            }
            self.url = format!("ldap://127.0.0.1:{}", self.port);
            let urls = match &self.ldaps_url {
                Some(l) => format!("'{}/ {l}/'", self.url),
                None => format!("{}/", self.url),
            };
            let script = format!(
                "/usr/sbin/slapd -d 0 -f {conf} -h {urls} >/dev/null 2>&1 & S=$!; \
                 echo $S > {dir}/slapd.child; \
                 while kill -0 {parent} 2>/dev/null && kill -0 $S 2>/dev/null; do sleep 0.2; done; \
                 kill $S 2>/dev/null; wait $S 2>/dev/null; \
                 if ! kill -0 {parent} 2>/dev/null; then rm -rf {dir}; fi",
                conf = self.dir.join("slapd.conf").display(),
                dir = self.dir.display(),
                parent = std::process::id(),
            );
            let child = Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn slapd watchdog");
            self.watchdog = Some(child);
            if self.wait_ready(Duration::from_secs(10)) {
                return;
            }
            self.kill();
            if !keep_port {
                self.port = free_port();
            }
        }
        panic!("slapd did not start in {}", self.dir.display());
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            if let Some(w) = &mut self.watchdog
                && let Ok(Some(_)) = w.try_wait()
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn seed(&self) {
        let ldif = format!(
            "dn: {SUFFIX}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: example\n"
        );
        let out = Command::new("ldapadd")
            .args(["-x", "-H", &self.url, "-D", ROOT_DN, "-w", ROOT_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                if let Some(mut i) = c.stdin.take() {
                    i.write_all(ldif.as_bytes())?;
                }
                c.wait_with_output()
            })
            .expect("run ldapadd (ldap-utils)");
        assert!(
            out.status.success(),
            "seeding failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The slapd process id.
    fn slapd_pid(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("slapd.child"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Kills slapd abruptly (SIGKILL), as a crash or an operator's `kill -9` would.
    pub fn kill(&mut self) {
        if let Some(pid) = self.slapd_pid() {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("slapd.pid"));
    }

    /// Starts slapd again on the same directory and port.
    pub fn restart(&mut self) {
        self.launch(true);
    }

    /// The backend configuration for this directory: the `openldap` preset with a subtree per
    /// source, lossless or not.
    pub fn config(&self, lossless: bool) -> LdapConfig {
        let mut c = LdapConfig::new(self.url.clone(), SUFFIX);
        c.bind_dn = ROOT_DN.into();
        c.bind_password_file = Some(self.dir.join("bind-password"));
        c.lossless = lossless;
        c.users.base_dn = Some(format!("ou=people,ou={{source}},{SUFFIX}"));
        c.groups.base_dn = Some(format!("ou=groups,ou={{source}},{SUFFIX}"));
        c.connect_timeout_secs = 2;
        c.operation_timeout_secs = 5;
        c.retry_after_secs = 2;
        c
    }

    /// Applies LDIF changes with `ldapmodify`, as another LDAP tool would.
    pub fn ldapmodify(&self, ldif: &str) {
        use std::io::Write;
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.url, "-D", ROOT_DN, "-w", ROOT_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ldapmodify");
        if let Some(mut i) = child.stdin.take() {
            i.write_all(ldif.as_bytes()).expect("write ldif");
        }
        let out = child.wait_with_output().expect("ldapmodify");
        assert!(
            out.status.success(),
            "ldapmodify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `ldapsearch` and returns its LDIF output.
    pub fn ldapsearch(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        let out = Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-H",
                &self.url,
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PW,
                "-b",
                base,
                filter,
            ])
            .args(attrs)
            .output()
            .expect("run ldapsearch");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A CA and a server certificate for 127.0.0.1, made with the openssl command line.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=scimd test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
