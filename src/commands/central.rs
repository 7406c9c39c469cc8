//! `haproxystats central [-f FILE] [-d DIR]` (SPEC §7, stage 1): consumes
//! raw snapshots from `[kafka] snapshots-topic` in the consumer group
//! `[central] group-id` until SIGTERM, SIGINT or SIGHUP, then drains: stop
//! consuming, finish in-flight snapshots, commit, flush the sinks within
//! [`SHUTDOWN_TIMEOUT`], exit 0. A second signal quits at once (nothing is
//! lost: what is not committed is read again by the next owner).

use std::sync::Arc;

use actix::Actor;

use super::CommandError;
use super::daemon::SHUTDOWN_TIMEOUT;
use crate::central::actor::{Central, CentralStart, StopCentral};
use crate::central::processor::ProcessorSettings;
use crate::config::{CentralSettings, Config};
use crate::engine::EngineOptions;
use crate::health::Reporter;
use crate::signals::StopSignals;
use crate::supervisor::restart::RestartLimit;

/// Runs central until a signal; `settings` are `[central]` resolved
/// ([`crate::config::resolve_central`]).
pub fn run(config: &Config, settings: CentralSettings, hostname: &str) -> Result<(), CommandError> {
    let mut engine = EngineOptions::from_config(config, hostname)
        .map_err(|error| CommandError::Startup(error.to_string()))?;
    // As the daemon: `workers` threads, each snapshot on one of them.
    engine.parallelism = 1;
    let host = crate::engine::prefix_host(&config.graphite, hostname);
    let namespace = config.graphite.namespace.clone();
    // `prefix-hostname` names the central host in its own metrics only.
    let self_prefix = if config.graphite.prefix_hostname {
        format!("{namespace}.{host}")
    } else {
        namespace.clone()
    };
    // The Kafka sink keys by central's host (one key for all the load
    // balancers a central instance processes: their order is kept), and
    // tags each influx point with the load balancer in its path. There is
    // one only when `[kafka] topic` is set: `[kafka]` describes the input.
    let sinks = crate::sink::line_sinks(
        &settings.lines_config(config),
        &namespace,
        &host,
        crate::sink::Lines::PerLoadBalancer,
    )
    .map_err(|error| CommandError::Unusable(error.to_string()))?;
    let max_partial_bytes = settings
        .kafka
        .message_max_bytes
        .saturating_sub(crate::raw::MESSAGE_MARGIN)
        .max(1);
    // Brokers and the user's options (TLS, SASL), none of a producer's.
    let mut client = rdkafka::ClientConfig::new();
    client.set("bootstrap.servers", &settings.kafka.brokers);
    for (name, value) in &settings.kafka.librdkafka {
        client.set(name, value);
    }
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            runtime.block_on(crate::central::topics::ensure(&settings, &client));
        }
        Err(error) => tracing::warn!(error = %error, "cannot check the partials and state topics"),
    }
    let cluster_namespace = settings.cluster_namespace.clone();
    let partials_codec = settings.partials_compression;
    let system = actix::System::new();
    system.block_on(async {
        let mut signals = StopSignals::listen().map_err(CommandError::Signals)?;
        let (fatal, mut fatal_errors) = tokio::sync::mpsc::unbounded_channel();
        let central = Central::new(CentralStart {
            settings,
            processing: ProcessorSettings {
                engine: Arc::new(engine),
                namespace,
                max_partial_bytes,
                cluster_namespace,
                partials_codec,
            },
            self_prefix,
            self_metrics_interval: config.pull.pull_interval,
            sinks,
            shutdown_timeout: SHUTDOWN_TIMEOUT,
            restart_limit: RestartLimit::default(),
            fatal,
            health: Some(Reporter::from_config(config, false)),
        })
        .map_err(|error| CommandError::Startup(error.to_string()))?
        .start();
        tokio::select! {
            signal = signals.next() => {
                tracing::info!(signal, "stopping: finishing in-flight snapshots, committing and flushing the sinks");
            }
            Some(error) = fatal_errors.recv() => {
                // What is not committed is read again after the restart.
                return Err(CommandError::Runtime(error));
            }
        }
        tokio::select! {
            left = central.send(StopCentral) => match left {
                Ok(0) => tracing::info!("stopped; every snapshot delivered and committed"),
                Ok(unconfirmed_lines) => tracing::info!(unconfirmed_lines, "stopped; what was not confirmed is not committed and will be read again"),
                Err(error) => return Err(CommandError::Runtime(format!("central did not stop cleanly: {error}"))),
            },
            second = signals.next() => {
                tracing::warn!(signal = second, "second signal: quitting now; what is not committed will be read again");
            }
        }
        Ok(())
    })
}
