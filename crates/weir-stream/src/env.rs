//! What a stream runs against: the lake (for Delta sinks, lake lookups and checkpoints), the project's named
//! connections when the stream belongs to a project, and the async runtime that IO runs on while the stream's own
//! thread does the deciding.

use std::path::Path;

use weir_config::Project;
use weir_core::{Error, Result};
use weir_lake::storage::{Lake, TableLocation};

#[derive(Debug, Clone)]
pub struct StreamEnv {
    pub lake: Lake,
    pub project: Option<Project>,
    pub runtime: tokio::runtime::Handle,
}

impl StreamEnv {
    /// The project's lake when `dir` holds a weir.yaml, else `./lake` beside the stream file.
    pub fn discover(dir: &Path, stream_file: &Path, runtime: tokio::runtime::Handle) -> Result<StreamEnv> {
        if dir.join(weir_config::project::PROJECT_FILE).exists() {
            let project = Project::load(dir).map_err(|ds| ds[0].to_error())?;
            let lake = Lake::for_project(&project)?;
            return Ok(StreamEnv { lake, project: Some(project), runtime });
        }
        let lake = Lake::local(&stream_file.parent().unwrap_or(Path::new(".")).join("lake"));
        Ok(StreamEnv { lake, project: None, runtime })
    }

    /// Where a stream keeps its checkpoints: `_streams/NAME` in the lake (shared by every process of the stream, so
    /// a partition's state follows it to whichever process is assigned it).
    pub fn checkpoints(&self, stream: &str) -> TableLocation {
        self.lake.location("_streams", stream)
    }

    /// A PostgreSQL URL from `url` (with `${env:...}` resolved) or a weir.yaml connection.
    pub fn connection_url(&self, url: Option<&str>, connection: Option<&str>) -> Result<String> {
        match (url, connection) {
            (Some(u), _) => weir_config::project::resolve_env(u).map_err(|e| Error::config(Default::default(), e)),
            (None, Some(name)) => {
                let project = self.project.as_ref().ok_or_else(|| {
                    Error::config(
                        Default::default(),
                        format!("connection `{name}` needs a project (weir.yaml); give `url` instead"),
                    )
                })?;
                let c = project
                    .connections
                    .get(name)
                    .ok_or_else(|| Error::config(Default::default(), format!("no connection `{name}` in weir.yaml")))?;
                weir_connect::connection::connection_url(c)
            }
            (None, None) => Err(Error::config(Default::default(), "give `url` or `connection`")),
        }
    }
}
