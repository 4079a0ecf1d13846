//! `weir`: one binary for the whole data job: extract, land, clean, model and serve. This library is the command line
//! (`main.rs` and the Python package's `weir` console script both call [`cli_main`]) and the commands behind it, which
//! the Python package also calls directly. It parses the command line and hands each subcommand to its module; it is
//! the only place that uses `anyhow` and chooses exit codes.
//!
//! Exit codes: 0 success; 1 a run or query failed (data, SQL, IO); 2 invalid configuration or usage; 130 interrupted.

pub mod check;
pub mod demo;
pub mod init;
pub mod orchestrate;
pub mod output;
pub mod progress;
pub mod quality;
pub mod run;
pub mod sample_data;
pub mod sql;
pub mod stream;
pub mod table;
pub mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "weir", version, about = "Extract, land, clean, model and serve data: one binary, no cluster.")]
struct Cli {
    /// Project folder (holding weir.yaml).
    #[arg(long, short = 'p', global = true, default_value = ".", env = "WEIR_PROJECT")]
    project: PathBuf,
    /// More log output (-v info, -vv debug).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log format when logging: text or json.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new project: weir.yaml, a pipeline, a SQL model and a sample input file.
    Init {
        /// Folder to create (must be empty or missing).
        dir: PathBuf,
    },
    /// Check weir.yaml, every pipeline and model; report all problems with file and line. Exit 2 if any.
    Validate,
    /// Run a pipeline for one logical date: tasks in dependency order, each committed atomically.
    Run {
        /// Pipeline name (pipelines/NAME.yaml) or path to a pipeline file.
        pipeline: String,
        /// The interval to run: its logical date (YYYY-MM-DD, Airflow's `ds`) or, on a pipeline with several
        /// intervals a day, its start (YYYY-MM-DDTHH:MM in the schedule's time zone). Default: the newest interval
        /// that has ended (yesterday, for a daily pipeline).
        #[arg(long)]
        date: Option<String>,
        /// Run only these tasks (and nothing else), in dependency order.
        #[arg(long = "task")]
        tasks: Vec<String>,
        /// Forget incremental cursors: sources read from their `initial` value again.
        #[arg(long)]
        full_refresh: bool,
        /// Fail at a task's first failure instead of retrying as its `retries` say (for debugging).
        #[arg(long)]
        no_retries: bool,
    },
    /// Query the lake with SQL: tables are `zone.table` (raw.orders, gold.daily_revenue).
    Sql {
        /// The query.
        query: String,
        /// Output format.
        #[arg(long, short = 'f', default_value = "table", value_parser = ["table", "csv", "json"])]
        format: String,
        /// Print at most this many rows in table format (all rows for csv/json).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Time travel: read Delta tables at this version (`3`, `v3`) or time (`2026-03-25T10:00:00Z`, `2026-03-25`).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Lake tables: list, describe; for Delta tables also history, optimize, vacuum and restore.
    Table {
        #[arg(value_parser = ["list", "describe", "history", "optimize", "vacuum", "restore"])]
        action: String,
        /// Table as `zone.table` (not for `list`).
        table: Option<String>,
        /// Output format.
        #[arg(long, short = 'f', default_value = "table", value_parser = ["table", "csv", "json"])]
        format: String,
        /// restore: the version to make current again.
        #[arg(long)]
        version: Option<u64>,
        /// vacuum: keep files any version of the last N hours needs (default: the table's retention, 168).
        #[arg(long)]
        retain_hours: Option<u64>,
        /// vacuum: list what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// optimize: Z-order the files by these columns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        zorder: Vec<String>,
        /// optimize: target file size in MB.
        #[arg(long)]
        target_size_mb: Option<u64>,
    },
    /// Show the data quality check results stored for a lake table (its latest run, or all runs).
    Quality {
        /// Table as `zone.table`.
        table: String,
        /// Every stored run, newest first.
        #[arg(long)]
        all: bool,
        #[arg(long, short = 'f', default_value = "table", value_parser = ["table", "csv", "json"])]
        format: String,
    },
    /// Check that the lake and every connection of weir.yaml answer (`weir check connections`).
    Check {
        #[arg(value_parser = ["connections"])]
        what: String,
    },
    /// A lake table's recorded schema: `show` a version, or `diff` two (default: the last two).
    Schema {
        #[arg(value_parser = ["diff", "show"])]
        action: String,
        /// Table as `zone.table`.
        table: String,
        #[arg(long)]
        from: Option<u32>,
        #[arg(long)]
        to: Option<u32>,
    },
    /// Run the scheduler and the REST API: scheduled runs (with catch-up), retries, timeouts, alerts. Ctrl-C stops;
    /// a stopped or killed daemon resumes its runs when started again.
    Serve {
        /// Address of the REST API (port 0: any free port, printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: String,
        /// Task attempts at once (default: the number of cores, at least 2; 0: schedule only, `weir worker`s run).
        #[arg(long)]
        parallelism: Option<usize>,
        /// A running task silent this long (from a process on another host) is re-queued.
        #[arg(long, default_value = "60s")]
        heartbeat_timeout: String,
        /// Let read endpoints answer without the token on a non-loopback address.
        #[arg(long)]
        open_reads: bool,
        /// A name the API and UI may be reached by besides the bound address and `localhost` (a reverse proxy's,
        /// a DNS name of this machine); `.example.com` allows every name under it. Repeatable. Requests naming
        /// any other host get 421, so a web page that re-points its own domain here (DNS rebinding) gets nothing.
        #[arg(long = "allowed-host")]
        allowed_hosts: Vec<String>,
    },
    /// Run queued tasks from a shared (PostgreSQL) metadata store, next to `weir serve` on any machine.
    Worker {
        /// Task attempts at once.
        #[arg(long, default_value_t = 2)]
        parallelism: usize,
        /// A running task silent this long (from a process on another host) is re-queued.
        #[arg(long, default_value = "60s")]
        heartbeat_timeout: String,
    },
    /// Every pipeline: schedule, paused or active, next run, last runs.
    Status,
    /// Runs (newest first), or with PIPELINE and --date, one run's tasks.
    Runs {
        pipeline: Option<String>,
        #[arg(long)]
        date: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Queue a manual run of a pipeline for a date; `weir serve` runs it, or this command with --wait.
    Trigger {
        pipeline: String,
        /// Logical date (YYYY-MM-DD). Default: yesterday.
        #[arg(long)]
        date: Option<String>,
        /// Run it here and wait for it to end.
        #[arg(long)]
        wait: bool,
        /// With --wait: task attempts at once (default: the number of cores, at least 2).
        #[arg(long)]
        parallelism: Option<usize>,
    },
    /// Stop scheduling new runs of a pipeline.
    Pause { pipeline: String },
    /// Resume scheduling a pipeline (with catch-up if it has it).
    Unpause { pipeline: String },
    /// Run a pipeline for every date from --from to --to (inclusive), here, --max-active dates at once.
    Backfill {
        pipeline: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Dates that already have a run: none (leave them), failed (re-run failed tasks), all.
        #[arg(long, default_value = "none", value_parser = ["none", "failed", "all"])]
        reprocess: String,
        #[arg(long, default_value_t = 2)]
        max_active: usize,
        /// Print what would run; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run a task of a date again, with its downstream tasks.
    Clear {
        pipeline: String,
        task: String,
        /// The run's logical date (YYYY-MM-DD), or for a pipeline with several intervals a day, the start of one
        /// (YYYY-MM-DDTHH:MM, in the schedule's time zone).
        #[arg(long)]
        date: String,
        /// Only this task, not its downstream tasks.
        #[arg(long)]
        only: bool,
        /// Run them here now and wait (else `weir serve` picks them up).
        #[arg(long)]
        wait: bool,
    },
    /// The log of every attempt of a task for a date.
    Logs {
        pipeline: String,
        task: String,
        #[arg(long)]
        date: String,
        #[arg(long = "try")]
        try_number: Option<u32>,
    },
    /// Metadata store upkeep: `weir db clean --older-than 90d` deletes old finished runs and their logs.
    Db {
        #[arg(value_parser = ["clean"])]
        action: String,
        #[arg(long, default_value = "90d")]
        older_than: String,
    },
    /// Run a stream (STREAM.yaml): read events (Kafka, NDJSON file or stdin), decide them with rules over event-time
    /// windows, write decisions and alerts; Ctrl-C finishes the batch, commits and checkpoints. A restart resumes.
    Stream {
        /// The stream file.
        file: PathBuf,
        /// Stop after this many events.
        #[arg(long)]
        max_events: Option<u64>,
        /// Stop when no event arrived for this long (`5s`).
        #[arg(long)]
        until_idle: Option<String>,
        /// Tells processes of one stream apart (the Kafka transactional id); default 0.
        #[arg(long)]
        instance: Option<String>,
        /// Serve Prometheus metrics at http://ADDR/metrics (`127.0.0.1:9464`).
        #[arg(long)]
        metrics: Option<String>,
        /// Instead of running: join the labels (the stream's `feedback`, or --labels) with the stream's alerts and
        /// print precision and recall per rule.
        #[arg(long)]
        report: bool,
        /// With --report: an NDJSON file of labels.
        #[arg(long)]
        labels: Option<PathBuf>,
    },
    /// Write generated card payments with known fraud (payments.ndjson, labels.ndjson, users.csv) into DIR: the
    /// fraud demo's input, for benchmarks and for producing to a broker.
    #[command(hide = true)]
    GeneratePayments {
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 5_000)]
        cards: u64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 0.01)]
        fraud_rate: f64,
        #[arg(long, default_value_t = 0.0)]
        late_rate: f64,
    },
    /// Generate a messy e-commerce data set, land it, clean it and print daily revenue by country. No server needed.
    Demo {
        /// Folder for the demo project (created or reused).
        #[arg(long, default_value = "weir-demo")]
        dir: PathBuf,
        /// Number of raw transaction rows (duplicates included).
        #[arg(long, default_value_t = 200_000)]
        rows: usize,
        /// Number of days of data, ending on 2026-03-25.
        #[arg(long, default_value_t = 5)]
        days: u32,
        /// Only generate the landing files; do not run the pipeline.
        #[arg(long)]
        generate_only: bool,
        /// Card payments for the fraud-detection part (a stream over an NDJSON file); 0 skips it.
        #[arg(long, default_value_t = 100_000)]
        fraud_events: u64,
    },
}

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Exit {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = match error.downcast_ref::<weir_core::Error>() {
            Some(weir_core::Error::Config { .. }) => 2,
            _ => 1,
        };
        Exit { code, error }
    }
}

pub fn exit(code: u8, error: anyhow::Error) -> Exit {
    Exit { code, error }
}

/// Sets up logging once per process (a second call, from a second command in one Python process, keeps the first).
pub fn init_logging(verbose: u8, format: &str) {
    use tracing_subscriber::EnvFilter;
    // deltalake reports its own bookkeeping (derived metrics) as warnings: quiet unless asked with -v.
    let default = match verbose {
        0 if progress::interactive() => "warn,deltalake_core=error",
        0 => "info,datafusion=warn,deltalake_core=error,delta_kernel=warn,delta_kernel_default_engine=warn,buoyant_kernel=warn,buoyant_kernel_engine=warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal: logs piped to a file, CI or a collector stay plain (and NO_COLOR is
    // honoured).
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    // `try_init`: a Python process may run several commands; the first one's logging stays.
    let _ = if format == "json" { builder.json().try_init() } else { builder.with_target(false).try_init() };
}

/// glibc gives threads that allocate at the same time arenas of their own (up to eight per core) and keeps freed
/// memory in each. Decoding, steps and encoding run on different threads, and the benchmark's CSV-to-Parquet run held
/// about 20% more peak memory that way, for no speed. Two arenas are enough for two busy stages.
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tuning value (glibc takes its own lock; in the Python package other threads
    // may exist already).
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Runs the command line `args` (the program name first) and returns its exit code.
pub fn cli_main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    ExitCode::from(cli_run(args))
}

/// [`cli_main`] with the exit code as a number (the Python package's console script returns it).
pub fn cli_run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    limit_malloc_arenas();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code() as u8;
        }
    };
    init_logging(cli.verbose, &cli.log_format);
    // CPU work (decoding, DataFusion, steps) runs on its own multi-threaded runtime; the main thread only waits for it
    // and for Ctrl-C, so an interrupt is handled at once even while every core is busy.
    let cpu = match tokio::runtime::Builder::new_multi_thread().thread_name("weir-cpu").enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    let main_rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    // A stream handles Ctrl-C itself: it finishes its batch, commits and checkpoints before exiting.
    let graceful = matches!(cli.command, Command::Stream { report: false, .. });
    let mut handle = cpu.spawn(dispatch(cli));
    let outcome = main_rt.block_on(async {
        if graceful {
            return Some(handle.await);
        }
        tokio::select! {
            r = &mut handle => Some(r),
            _ = tokio::signal::ctrl_c() => {
                // The unfinished work is dropped, not abandoned: a query running on a remote engine is cancelled
                // there (a Ballista job, a Spark operation) before weir exits, within a bound.
                handle.abort();
                let _ = tokio::time::timeout(std::time::Duration::from_secs(20), &mut handle).await;
                None
            }
        }
    });
    let code = match outcome {
        None => {
            eprintln!("interrupted: nothing was committed by the unfinished task; the lake keeps its previous state");
            130
        }
        Some(Err(join)) => {
            eprintln!("error: internal failure (please report): {join}");
            1
        }
        Some(Ok(Ok(()))) => 0,
        Some(Ok(Err(e))) => {
            if let Some(diags) = e.error.downcast_ref::<output::Diagnostics>() {
                for d in &diags.0 {
                    eprintln!("{d}");
                }
            }
            eprintln!("error: {:#}", e.error);
            e.code
        }
    };
    cpu.shutdown_background();
    code
}

async fn dispatch(cli: Cli) -> Result<(), Exit> {
    match cli.command {
        Command::Init { dir } => init::init(&dir),
        Command::Validate => validate::validate(&cli.project).await,
        Command::Run { pipeline, date, tasks, full_refresh, no_retries } => {
            let options = run::RunOptions { only: tasks, full_refresh, no_retries };
            run::run(&cli.project, &pipeline, date.as_deref(), &options).await.map(|_| ())
        }
        Command::Sql { query, format, limit, as_of } => {
            sql::sql(&cli.project, &query, &format, limit, as_of.as_deref()).await
        }
        Command::Table { action, table, format, version, retain_hours, dry_run, zorder, target_size_mb } => {
            let maintenance = table::Maintenance { version, retain_hours, dry_run, zorder, target_size_mb };
            table::table(&cli.project, &action, table.as_deref(), &format, maintenance).await
        }
        Command::Quality { table, all, format } => quality::quality(&cli.project, &table, all, &format).await,
        Command::Check { .. } => check::connections(&cli.project).await,
        Command::Schema { action, table, from, to } => quality::schema(&cli.project, &action, &table, from, to).await,
        Command::Stream { file, max_events, until_idle, instance, metrics, report, labels } => {
            let options = stream::StreamOptions { max_events, until_idle, instance, metrics, report, labels };
            stream::stream(&cli.project, &file, options).await
        }
        Command::GeneratePayments { dir, events, cards, seed, fraud_rate, late_rate } => {
            let config = weir_stream::config::GeneratorConfig { events, seed, cards, fraud_rate, late_rate };
            demo::write_payments(&dir, &config)?;
            println!("{events} payments for {cards} cards in {}", dir.display());
            Ok(())
        }
        Command::Demo { dir, rows, days, generate_only, fraud_events } => {
            demo::demo(&dir, rows, days, generate_only, fraud_events).await
        }
        Command::Serve { bind, parallelism, heartbeat_timeout, open_reads, allowed_hosts } => {
            let options = orchestrate::ServeOptions { bind, parallelism, heartbeat_timeout, open_reads, allowed_hosts };
            orchestrate::serve(&cli.project, options).await
        }
        Command::Worker { parallelism, heartbeat_timeout } => {
            orchestrate::worker(&cli.project, parallelism, &heartbeat_timeout).await
        }
        Command::Status => orchestrate::status(&cli.project).await,
        Command::Runs { pipeline, date, limit } => {
            orchestrate::runs(&cli.project, pipeline.as_deref(), date.as_deref(), limit).await
        }
        Command::Trigger { pipeline, date, wait, parallelism } => {
            orchestrate::trigger(&cli.project, &pipeline, date.as_deref(), wait, parallelism).await
        }
        Command::Pause { pipeline } => orchestrate::pause(&cli.project, &pipeline, true).await,
        Command::Unpause { pipeline } => orchestrate::pause(&cli.project, &pipeline, false).await,
        Command::Backfill { pipeline, from, to, reprocess, max_active, dry_run } => {
            let options = orchestrate::BackfillOptions { from, to, reprocess, max_active, dry_run };
            orchestrate::backfill(&cli.project, &pipeline, options).await
        }
        Command::Clear { pipeline, task, date, only, wait } => {
            orchestrate::clear(&cli.project, &pipeline, &task, &date, only, wait).await
        }
        Command::Logs { pipeline, task, date, try_number } => {
            orchestrate::logs(&cli.project, &pipeline, &task, &date, try_number).await
        }
        Command::Db { older_than, .. } => orchestrate::db_clean(&cli.project, &older_than).await,
    }
}
