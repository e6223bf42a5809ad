//! Tests that need a process of their own (a global subscriber, a kill, `process::exit`, a
//! resource limit, a second holder of a lock) run their test binary again as a child that runs
//! only that same test, with [`TEST_ENV`] naming it. The test then takes its child branch:
//!
//! ```ignore
//! #[test]
//! fn some_behaviour() {
//!     if let Some(dir) = child::folder("some_behaviour") {
//!         return child_part(&dir); // only in the child
//!     }
//!     let run = ChildRun::new();
//!     let mut child = run.spawn("some_behaviour");
//!     // ... wait for it or kill it, then check what it left in `run.dir`
//! }
//! ```
//!
//! So no test is a child alone that passes without doing anything in a normal run: every test
//! runs its checks, and the child is only a part of one. [`ChildRun::command`] checks that the
//! test binary has a test of that name, so a renamed test cannot leave its child running none.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Set only in a child: the test it runs.
const TEST_ENV: &str = "LOGSINK_TEST_CHILD";

/// Set only in a child: its folder.
const DIR_ENV: &str = "LOGSINK_TEST_CHILD_DIR";

/// How long a child may take to finish before the parent fails: only turns a hang into a
/// failure.
pub const CHILD_DEADLINE: Duration = Duration::from_secs(60);

/// In the child process started for `test`: the folder its parent gave it. `None` in a normal
/// test run (and in a child started for another test).
pub fn folder(test: &str) -> Option<PathBuf> {
    if std::env::var_os(TEST_ENV).as_deref() != Some(OsStr::new(test)) {
        return None;
    }
    Some(
        std::env::var_os(DIR_ENV)
            .expect("the parent sets the folder")
            .into(),
    )
}

/// Kills the child on drop, so that a failing parent never leaves it running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child's folders: a temporary folder holding the child's (empty) log folder `dir` and a
/// file with its stdout and stderr.
pub struct ChildRun {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    output: PathBuf,
}

impl ChildRun {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs");
        std::fs::create_dir(&dir).unwrap();
        let output = tmp.path().join("child-output.txt");
        ChildRun { tmp, dir, output }
    }

    /// This test binary as the child running `test` alone, on [`dir`](Self::dir): stdin
    /// empty, stdout and stderr into the output file (the caller may redirect them).
    pub fn command(&self, test: &str) -> Command {
        let exe = std::env::current_exe().expect("current_exe");
        assert_has_test(&exe, test);
        let err = File::create(&self.output).unwrap();
        let mut command = Command::new(exe);
        command
            .args([test, "--exact", "--nocapture", "--test-threads", "1"])
            .env(TEST_ENV, test)
            .env(DIR_ENV, &self.dir)
            .stdin(Stdio::null())
            .stdout(err.try_clone().unwrap())
            .stderr(err);
        command
    }

    /// Starts [`command`](Self::command).
    pub fn spawn(&self, test: &str) -> KillOnDrop {
        KillOnDrop(self.command(test).spawn().expect("starting the child"))
    }

    /// What the child wrote into the output file so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.output).unwrap_or_default()).into_owned()
    }

    /// Waits for the child to end by itself, failing after [`CHILD_DEADLINE`].
    pub fn wait(&self, child: &mut KillOnDrop) -> ExitStatus {
        let deadline = Instant::now() + CHILD_DEADLINE;
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the child did not end within {CHILD_DEADLINE:?}; its output:\n{}",
                self.output()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Fails unless the test binary `exe` has a test named `test` exactly.
fn assert_has_test(exe: &Path, test: &str) {
    let listed = Command::new(exe)
        .args([test, "--exact", "--list"])
        .env_remove(TEST_ENV)
        .stdin(Stdio::null())
        .output()
        .expect("listing the tests");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.lines().any(|l| l == format!("{test}: test")),
        "this test binary has no test {test:?} to run as the child: {listed}"
    );
}
