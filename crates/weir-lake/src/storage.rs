//! Where the lake lives: a local folder, or a bucket on S3 or an S3-compatible server (MinIO, Ceph, R2...), Azure
//! Blob Storage / ADLS Gen2 (`az://container/prefix`) or Google Cloud Storage (`gs://bucket/prefix`).
//!
//! A local lake holds Parquet and Delta tables; a lake on object storage holds Delta tables only, because a plain
//! Parquet folder has no atomic way to swap a partition on object storage while the Delta log does: each commit is
//! one object created with `If-None-Match: *`, so two writers racing for the same version cannot both win, and the
//! loser retries on top of the winner's commit instead of overwriting it.
//!
//! Credentials and endpoint come from the environment (`AWS_*`, `AZURE_STORAGE_*`, `GOOGLE_*`, as object_store
//! reads them) or from `lake.storage` in `weir.yaml`, whose keys are object_store's options for that store (S3:
//! `endpoint`, `region`, `access_key_id`, `secret_access_key`, `allow_http`; Azure: `account_name`, `access_key`,
//! `use_emulator`; GCS: `service_account_path`...) and whose values may be `${env:NAME}` or `${file:PATH}`. Azure
//! and GCS support conditional puts natively.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use deltalake::logstore::{
    logstore_factories, object_store_factories, LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef,
    StorageConfig,
};
use deltalake::{DeltaResult, DeltaTableError};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;
use weir_core::{Error, Result};

use crate::table_name::TableName;

/// The lake root: a folder or an object-store URL, with the options to reach it.
#[derive(Debug, Clone)]
pub struct Lake {
    root: Url,
    options: HashMap<String, String>,
    local: Option<PathBuf>,
}

impl Lake {
    /// A lake in a local folder.
    pub fn local(dir: &Path) -> Lake {
        let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let root = Url::from_directory_path(&abs).unwrap_or_else(|_| Url::parse("file:///").expect("valid url"));
        Lake { root, options: HashMap::new(), local: Some(abs) }
    }

    /// The lake of a project: `lake.root` (a folder relative to the project, `file://`, or `s3://bucket/prefix`)
    /// and `lake.storage` options.
    pub fn for_project(project: &weir_config::Project) -> Result<Lake> {
        let root = project.lake.root.as_str();
        let at = || weir_core::error::Location {
            file: Some(project.dir.join(weir_config::project::PROJECT_FILE)),
            line: None,
            column: None,
        };
        match root.split_once("://") {
            None => Ok(Lake::local(&project.lake_root())),
            Some(("file", _)) => Ok(Lake::local(&project.lake_root())),
            Some((scheme, _)) if CLOUD_SCHEMES.contains(&scheme) => {
                let mut url = Url::parse(root).map_err(|e| Error::config(at(), format!("lake root `{root}`: {e}")))?;
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                let mut options = HashMap::new();
                for (k, v) in &project.lake.storage {
                    let key = k.to_ascii_lowercase();
                    if !known_option(scheme, &key) {
                        let examples = match scheme {
                            "s3" => "`endpoint`, `region`, `access_key_id`, `secret_access_key`, `allow_http`",
                            "gs" => "`service_account_path`, `service_account_key`, `bucket`",
                            _ => "`account_name`, `access_key`, `use_emulator`, `endpoint`",
                        };
                        return Err(Error::config(
                            at(),
                            format!("unknown {scheme}:// option `{k}` in lake.storage; use object_store's names such as {examples}"),
                        ));
                    }
                    let v = weir_config::project::resolve_env(v)
                        .map_err(|e| Error::config(at(), format!("lake.storage.{k}: {e}")))?;
                    options.insert(key, v);
                }
                register_object_stores();
                Ok(Lake { root: url, options, local: None })
            }
            Some((scheme, _)) => Err(Error::config(
                at(),
                format!("lake root `{root}`: `{scheme}://` is not supported; use a folder, `file://`, `s3://bucket/prefix`, `az://container/prefix` or `gs://bucket/prefix`"),
            )),
        }
    }

    /// The root folder of a local lake.
    pub fn local_root(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    pub fn url(&self) -> &Url {
        &self.root
    }

    /// Storage options passed to every table of the lake (never printed: they may hold secrets).
    pub fn options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// Where `zone.table` lives.
    pub fn table(&self, name: &TableName) -> TableLocation {
        self.location(&name.zone, &name.name)
    }

    /// Where table `name` of `zone` lives (zones include `_weir`).
    pub fn location(&self, zone: &str, name: &str) -> TableLocation {
        let url = self.root.join(&format!("{zone}/{name}/")).unwrap_or_else(|_| self.root.clone());
        TableLocation {
            url,
            options: self.options.clone(),
            local: self.local.as_ref().map(|root| root.join(zone).join(name)),
        }
    }

    /// The store of the whole bucket, and the bucket's URL (`s3://bucket`): what DataFusion needs to read files
    /// named by full URL.
    pub fn bucket_store(&self) -> Result<(Url, Arc<dyn ObjectStore>)> {
        let bucket = Url::parse(&format!("{}://{}", self.root.scheme(), self.root.host_str().unwrap_or_default()))
            .map_err(|e| Error::config(Default::default(), format!("lake root {}: {e}", self.root)))?;
        let store = cloud_store(&bucket, &self.options).map_err(|e| storage_error(&self.root, e))?;
        Ok((bucket, store))
    }

    /// The path of the lake root inside its bucket.
    pub fn root_path(&self) -> ObjectPath {
        ObjectPath::from(self.root.path().trim_matches('/'))
    }
}

impl std::fmt::Display for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.local {
            Some(p) => write!(f, "{}", p.display()),
            None => write!(f, "{}", self.root),
        }
    }
}

/// Where one table lives.
#[derive(Debug, Clone)]
pub struct TableLocation {
    /// `file:///.../lake/silver/orders/` or `s3://bucket/lake/silver/orders/`.
    pub url: Url,
    pub options: HashMap<String, String>,
    /// The folder, for a table of a local lake.
    pub local: Option<PathBuf>,
}

impl TableLocation {
    /// A table in a local folder.
    pub fn local(dir: &Path) -> TableLocation {
        let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let url = Url::from_directory_path(&abs).unwrap_or_else(|_| Url::parse("file:///").expect("valid url"));
        TableLocation { url, options: HashMap::new(), local: Some(abs) }
    }

    /// The local folder, or an error saying that this kind of table needs a local lake.
    pub fn local_dir(&self, what: &str) -> Result<&Path> {
        self.local.as_deref().ok_or_else(|| {
            Error::config(
                Default::default(),
                format!("{what} at {}: only Delta tables can live on object storage; use `format: delta`", self.url),
            )
        })
    }

    /// The store rooted at this table, through deltalake's registry (so local and S3 tables read alike).
    fn store(&self) -> Result<ObjectStoreRef> {
        let table = deltalake::DeltaTableBuilder::from_url(self.url.clone())
            .map_err(|e| storage_error(&self.url, e))?
            .with_storage_options(self.options.clone())
            .build_storage()
            .map_err(|e| storage_error(&self.url, e))?;
        Ok(table.object_store(None))
    }

    /// A small file beside the table's data (`_weir_schema.json`), or None when it does not exist.
    pub async fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        if let Some(dir) = &self.local {
            return match std::fs::read(dir.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(format!("read {}", dir.join(name).display()), e)),
            };
        }
        match self.store()?.get(&ObjectPath::from(name)).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(|e| storage_error(&self.url, e))?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage_error(&self.url, e)),
        }
    }

    /// Replaces a small file beside the table's data, atomically (a reader sees the old or the new content).
    pub async fn write_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        if let Some(dir) = &self.local {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
            return crate::atomic::write_file(&dir.join(name), bytes);
        }
        self.store()?
            .put(&ObjectPath::from(name), PutPayload::from(bytes.to_vec()))
            .await
            .map(|_| ())
            .map_err(|e| storage_error(&self.url, e))
    }

    /// The Parquet files in `folder` (relative to the table): their names, sizes and footers, in name order.
    pub async fn parquet_files_in(
        &self,
        folder: &str,
    ) -> Result<Vec<(String, u64, parquet::file::metadata::ParquetMetaData)>> {
        use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
        let store = self.store()?;
        let prefix = ObjectPath::from(folder);
        let mut listed: Vec<object_store::ObjectMeta> =
            store.list(Some(&prefix)).try_collect().await.map_err(|e| storage_error(&self.url, e))?;
        listed.retain(|m| m.location.extension() == Some("parquet"));
        listed.sort_by(|a, b| a.location.cmp(&b.location));
        let mut files = Vec::with_capacity(listed.len());
        for meta in listed {
            let bad = |e: String| Error::data(Default::default(), format!("{}{}: {e}", self.url, meta.location));
            let range = |r: std::ops::Range<u64>| store.get_range(&meta.location, r);
            // The footer: its last 8 bytes give the length of the metadata before them.
            let tail = range(meta.size.saturating_sub(8)..meta.size).await.map_err(|e| storage_error(&self.url, e))?;
            let tail: [u8; 8] = tail.as_ref().try_into().map_err(|_| bad("shorter than a Parquet footer".into()))?;
            let length = FooterTail::try_new(&tail).map_err(|e| bad(e.to_string()))?.metadata_length() as u64;
            let start =
                meta.size.checked_sub(8 + length).ok_or_else(|| bad("its footer is longer than the file".into()))?;
            let footer = range(start..meta.size - 8).await.map_err(|e| storage_error(&self.url, e))?;
            let metadata = ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| bad(e.to_string()))?;
            let name = meta.location.filename().unwrap_or_default().to_string();
            files.push((name, meta.size, metadata));
        }
        Ok(files)
    }

    /// Deletes files of the table named by paths relative to it (staged files a merge consumed).
    pub async fn delete_files(&self, paths: &[String]) -> Result<()> {
        let store = self.store()?;
        for p in paths {
            let path = ObjectPath::from_url_path(p).map_err(|e| storage_error(&self.url, e))?;
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage_error(&self.url, e)),
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for TableLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.local {
            Some(p) => write!(f, "{}", p.display()),
            None => write!(f, "{}", self.url),
        }
    }
}

pub(crate) fn storage_error(url: &Url, e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    let bucket = url.host_str().unwrap_or_default();
    // The store's answer is only known as text here: the hint for the user comes from it, and a missing bucket or
    // refused credentials are final; anything else (a timeout, an unreachable endpoint, a 503) may pass.
    let (cause, retry) = if text.contains("NoSuchBucket") {
        (format!("the bucket `{bucket}` does not exist (or these credentials cannot see it); "), false)
    } else if text.contains("error sending request") || text.contains("Connection refused") {
        (
            "the storage endpoint cannot be reached (check `lake.storage.endpoint` or AWS_ENDPOINT_URL); ".to_string(),
            true,
        )
    } else if text.contains("AccessDenied") || text.contains("InvalidAccessKeyId") || text.contains("403") {
        ("access denied: check the credentials (AWS_ACCESS_KEY_ID / `lake.storage.access_key_id`); ".to_string(), false)
    } else {
        (String::new(), true)
    };
    let (context, message) = (format!("storage {url}"), format!("{cause}{text}"));
    if retry {
        Error::external(context, message)
    } else {
        Error::external_final(context, message)
    }
}

/// The URL schemes of object stores a lake may live on.
const CLOUD_SCHEMES: &[&str] = &["s3", "az", "abfs", "abfss", "gs"];

fn known_option(scheme: &str, key: &str) -> bool {
    match scheme {
        "s3" => AmazonS3ConfigKey::from_str(key).is_ok(),
        "gs" => GoogleConfigKey::from_str(key).is_ok(),
        _ => AzureConfigKey::from_str(key).is_ok(),
    }
}

/// The store for `url`'s bucket or container: environment first, then the lake's options. Commits use conditional
/// puts (`If-None-Match: *`), which AWS S3, MinIO, R2, most S3-compatible servers, Azure and GCS support.
fn cloud_store(url: &Url, options: &HashMap<String, String>) -> object_store::Result<Arc<dyn ObjectStore>> {
    Ok(match url.scheme() {
        "s3" => {
            let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
            for (k, v) in options {
                if let Ok(key) = AmazonS3ConfigKey::from_str(k) {
                    builder = builder.with_config(key, v);
                }
            }
            Arc::new(builder.with_conditional_put(S3ConditionalPut::ETagMatch).build()?)
        }
        "gs" => {
            let mut builder = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
            for (k, v) in options {
                if let Ok(key) = GoogleConfigKey::from_str(k) {
                    builder = builder.with_config(key, v);
                }
            }
            Arc::new(builder.build()?)
        }
        _ => {
            let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
            for (k, v) in options {
                if let Ok(key) = AzureConfigKey::from_str(k) {
                    builder = builder.with_config(key, v);
                }
            }
            Arc::new(builder.build()?)
        }
    })
}

/// Makes deltalake open `s3://`, `az://` and `gs://` tables with [`cloud_store`] and its default log store, whose
/// commits are conditional puts. (deltalake's own `s3`, `azure` and `gcs` features would bring the AWS SDK for a
/// DynamoDB lock weir does not need, and duplicate what object_store already does.)
pub fn register_object_stores() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        for scheme in CLOUD_SCHEMES {
            let scheme = Url::parse(&format!("{scheme}://")).expect("valid url");
            object_store_factories().insert(scheme.clone(), Arc::new(CloudFactory));
            logstore_factories().insert(scheme, Arc::new(CloudFactory));
        }
    });
}

struct CloudFactory;

impl ObjectStoreFactory for CloudFactory {
    fn parse_url_opts(&self, url: &Url, config: &StorageConfig) -> DeltaResult<(ObjectStoreRef, ObjectPath)> {
        let store = cloud_store(url, &config.raw).map_err(|e| DeltaTableError::ObjectStore { source: e })?;
        let path =
            ObjectPath::from_url_path(url.path()).map_err(|e| DeltaTableError::GenericError { source: Box::new(e) })?;
        Ok((store, path))
    }
}

impl LogStoreFactory for CloudFactory {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(deltalake::logstore::default_logstore(prefixed_store, root_store, location, options))
    }
}
