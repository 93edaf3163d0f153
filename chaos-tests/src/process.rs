//! One long-running process (a node, dnsmasq) inside a network namespace, with its output in a
//! log file, and the signals a nemesis needs: kill, pause, resume, terminate, restart.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use crate::error::{Error, Result};

/// What to run: program, arguments, extra environment, working directory.
#[derive(Debug, Clone, Default)]
pub struct CommandSpec {
    /// The program (a path, or a name looked up on PATH inside the namespace).
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables (e.g. `LD_PRELOAD` for libfaketime).
    pub env: Vec<(OsString, OsString)>,
    /// Working directory, if not inherited.
    pub cwd: Option<PathBuf>,
}

impl CommandSpec {
    /// A command with no arguments yet.
    pub fn new(program: impl Into<OsString>) -> CommandSpec {
        CommandSpec {
            program: program.into(),
            ..CommandSpec::default()
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> CommandSpec {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> CommandSpec {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> CommandSpec {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command line, for logs.
    pub fn display(&self) -> String {
        crate::cmd::render(&self.program, &self.args)
    }
}

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Started and not known to have exited.
    Running,
    /// Stopped with SIGSTOP.
    Paused,
    /// Exited or killed, and reaped.
    Exited,
}

/// A process the harness started, optionally inside a network namespace.
#[derive(Debug)]
pub struct Process {
    name: String,
    netns: Option<String>,
    spec: CommandSpec,
    log: PathBuf,
    child: Option<Child>,
    state: State,
    last_exit: Option<ExitStatus>,
    starts: u32,
}

impl Process {
    /// Starts `spec` as `name`, inside `netns` when given (`ip netns exec`, which applies
    /// `/etc/netns/<ns>/` and execs, so the child's pid is the program's pid). Output goes to
    /// `log`, appended across restarts with a header line per start.
    pub fn spawn(
        name: &str,
        netns: Option<&str>,
        spec: CommandSpec,
        log: &Path,
    ) -> Result<Process> {
        let mut p = Process {
            name: name.to_owned(),
            netns: netns.map(str::to_owned),
            spec,
            log: log.to_path_buf(),
            child: None,
            state: State::Exited,
            last_exit: None,
            starts: 0,
        };
        p.start()?;
        Ok(p)
    }

    fn start(&mut self) -> Result<()> {
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { what, path, source }
        };
        let mut out = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io("open log", &self.log))?;
        self.starts += 1;
        let line = format!(
            "=== start #{} of {}: {}\n",
            self.starts,
            self.name,
            self.spec.display()
        );
        out.write_all(line.as_bytes())
            .map_err(io("write log", &self.log))?;
        let err = out.try_clone().map_err(io("open log", &self.log))?;
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new(&crate::env::require()?.ip);
                c.args(["netns", "exec", ns.as_str()])
                    .arg(&self.spec.program);
                c
            }
            None => Command::new(&self.spec.program),
        };
        cmd.args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some(dir) = &self.spec.cwd {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            cmd: self.spec.display(),
            source,
        })?;
        tracing::debug!(name = %self.name, pid = child.id(), "started");
        self.child = Some(child);
        self.state = State::Running;
        Ok(())
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pid of the current incarnation, if one is alive (running or paused).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// How many times the process was started (1 + restarts).
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The command this process runs.
    pub fn spec(&self) -> &CommandSpec {
        &self.spec
    }

    /// The state, after reaping an exit that happened on its own.
    pub fn state(&mut self) -> State {
        self.poll_exit();
        self.state
    }

    /// The exit status of the last incarnation that exited.
    pub fn last_exit(&self) -> Option<ExitStatus> {
        self.last_exit
    }

    fn poll_exit(&mut self) {
        if let Some(child) = &mut self.child {
            if let Ok(Some(status)) = child.try_wait() {
                self.exited(status);
            }
        }
    }

    fn exited(&mut self, status: ExitStatus) {
        tracing::debug!(name = %self.name, %status, "exited");
        self.child = None;
        self.state = State::Exited;
        self.last_exit = Some(status);
    }

    fn signal(&mut self, signal: Signal, signal_name: &'static str) -> Result<()> {
        self.poll_exit();
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return Ok(());
        };
        kill_process(raw, signal).map_err(|e| Error::Signal {
            signal: signal_name,
            name: self.name.clone(),
            pid,
            source: e.into(),
        })
    }

    /// SIGKILL, then reap. A paused process dies too. No-op when already exited.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let status = child.wait().map_err(|source| Error::Io {
                what: "wait for",
                path: PathBuf::from(&self.name),
                source,
            })?;
            self.exited(status);
        }
        Ok(())
    }

    /// SIGSTOP: the process keeps its sockets but stops answering.
    pub fn pause(&mut self) -> Result<()> {
        self.signal(Signal::STOP, "SIGSTOP")?;
        if self.child.is_some() {
            self.state = State::Paused;
        }
        Ok(())
    }

    /// SIGCONT after a pause.
    pub fn resume(&mut self) -> Result<()> {
        self.signal(Signal::CONT, "SIGCONT")?;
        if self.child.is_some() {
            self.state = State::Running;
        }
        Ok(())
    }

    /// SIGTERM (a graceful shutdown); a paused process is resumed so it can act on it.
    pub fn terminate(&mut self) -> Result<()> {
        self.signal(Signal::TERM, "SIGTERM")?;
        if self.state == State::Paused {
            self.resume()?;
        }
        Ok(())
    }

    /// Kills the current incarnation, if any, and starts the same command again.
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.start()
    }

    /// Waits up to `timeout` for the process to exit on its own; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll_exit();
            if self.child.is_none() {
                if let Some(status) = self.last_exit {
                    return Ok(status);
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{} to exit", self.name),
                    after: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// The last `lines` lines of a file (reads at most the last 64 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
