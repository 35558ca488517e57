//! Several `sluice serve` instances sharing one PostgreSQL server: each with its own
//! `--instance-id`, configuration file (the `[store]` section plus what the test adds) and data
//! directory; killed, restarted and stopped one by one.

use std::path::PathBuf;

use super::postgres::Postgres;
use super::serve::Serve;
use super::Launch;

/// One instance; `serve` is `None` while it is down.
pub struct Member {
    pub id: String,
    config: PathBuf,
    data: tempfile::TempDir,
    pub serve: Option<Serve>,
}

/// The instances and their database; all stopped on drop.
pub struct Cluster {
    pub members: Vec<Member>,
    /// Declared after the members, so the database outlives them when dropped.
    pub pg: Postgres,
    secrets: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Start one instance per id, in order; `extra` gives each one's configuration beyond
    /// `[store]` (TOML, written before that section, so it may set top-level keys).
    pub fn start(prefix: &str, ids: &[&str], extra: impl Fn(&str) -> String) -> Cluster {
        let pg = Postgres::start(prefix);
        let dir = tempfile::tempdir().unwrap();
        let members = ids
            .iter()
            .map(|id| {
                let config = dir.path().join(format!("{id}.toml"));
                std::fs::write(&config, format!("{}\n{}", extra(id), pg.store_config())).unwrap();
                Member {
                    id: id.to_string(),
                    config,
                    data: tempfile::tempdir().unwrap(),
                    serve: None,
                }
            })
            .collect();
        let mut cluster = Cluster {
            secrets: vec![pg.password()],
            members,
            pg,
            _dir: dir,
        };
        for i in 0..ids.len() {
            cluster.restart(i);
        }
        cluster
    }

    /// Start (again) instance `i`.
    pub fn restart(&mut self, i: usize) {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let m = &mut self.members[i];
        let config = m.config.to_str().unwrap().to_string();
        let args = ["--config", config.as_str(), "--instance-id", m.id.as_str()];
        let launch = Launch {
            secrets: &secrets,
            ..Launch::default()
        };
        m.serve = Some(Serve::start_with(m.data.path(), &args, &launch));
    }

    /// The API URL of instance `i` (which must be up).
    pub fn url(&self, i: usize) -> String {
        self.serve(i).url.clone()
    }

    /// The URLs of the instances that are up.
    pub fn urls(&self) -> Vec<String> {
        self.members
            .iter()
            .filter_map(|m| m.serve.as_ref().map(|s| s.url.clone()))
            .collect()
    }

    pub fn serve(&self, i: usize) -> &Serve {
        self.members[i]
            .serve
            .as_ref()
            .expect("the instance is down")
    }

    /// SIGKILL instance `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut s) = self.members[i].serve.take() {
            s.sigkill();
        }
    }
}
