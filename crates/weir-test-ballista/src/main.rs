//! `weir-test-ballista scheduler|executor [Ballista's own flags]`: a Ballista 55 scheduler or executor, as the
//! `ballista-scheduler` and `ballista-executor` binaries run them (their flags, their S3 support configured by the
//! `s3.*` settings a client sends), built in weir's workspace so the tests need no second DataFusion build. The
//! tests of `engine: ballista` start one scheduler and two executors on loopback from this binary.

use std::sync::Arc;

use ballista_core::object_store::{
    runtime_env_with_s3_support, session_config_with_s3_support, session_state_with_s3_support,
};
use clap::Parser;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args();
    let program = args.next().unwrap_or_default();
    let role = args.next().unwrap_or_default();
    let rest = std::iter::once(format!("{program} {role}")).chain(args);
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    // Ballista plans deep trees recursively: its own binaries give their threads 32 MiB stacks.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(32 * 1024 * 1024).build()?;
    match role.as_str() {
        "scheduler" => runtime.block_on(scheduler(ballista_scheduler::config::Config::parse_from(rest)))?,
        "executor" => runtime.block_on(executor(ballista_executor::config::Config::parse_from(rest)))?,
        other => return Err(format!("usage: {program} scheduler|executor [flags] (not `{other}`)").into()),
    }
    Ok(())
}

async fn scheduler(opt: ballista_scheduler::config::Config) -> Result<(), Box<dyn std::error::Error>> {
    use ballista_scheduler::config::SchedulerConfig;
    let address = format!("{}:{}", opt.bind_host, opt.bind_port).parse()?;
    let config: SchedulerConfig = opt.try_into()?;
    let config = config
        .with_override_config_producer(Arc::new(session_config_with_s3_support))
        .with_override_session_builder(Arc::new(session_state_with_s3_support));
    let cluster = ballista_scheduler::cluster::BallistaCluster::new_from_config(&config).await?;
    ballista_scheduler::scheduler_process::start_server(cluster, address, Arc::new(config)).await?;
    Ok(())
}

async fn executor(opt: ballista_executor::config::Config) -> Result<(), Box<dyn std::error::Error>> {
    use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
    let mut config: ExecutorProcessConfig = opt.try_into()?;
    config.override_config_producer = Some(Arc::new(session_config_with_s3_support));
    config.override_runtime_producer = Some(Arc::new(runtime_env_with_s3_support));
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}
