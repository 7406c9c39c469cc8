//! The PrometheusSink actor: each snapshot's lines become the served
//! series of its load balancer (or of the node), then the snapshot is
//! acknowledged; the HTTP server runs beside it on the same thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::prelude::*;

use super::Settings;
use super::exposition::convert;
use super::server::{Endpoint, serve};
use crate::sink::messages::{Flush, GetSinkHealth, SendLinesAcked, SinkHealth};

/// Converting a snapshot of this timestamp panics (test builds only).
#[cfg(test)]
const INJECT_PANIC_TS: u64 = 13;

/// The Prometheus sink. It has no backlog: a snapshot is served as soon
/// as it is converted, and the next one replaces it.
pub struct PrometheusSink {
    settings: Arc<Settings>,
    endpoint: Arc<Endpoint>,
    /// Lines no series could be made of, since start.
    skipped: u64,
    /// When a snapshot was last served (epoch seconds).
    last_update: Option<u64>,
}

impl PrometheusSink {
    /// A sink serving on `settings.listener`.
    pub fn new(settings: Arc<Settings>) -> PrometheusSink {
        let endpoint = Arc::new(Endpoint::new(
            settings.path.clone(),
            Arc::clone(&settings.served),
            settings.limits,
        ));
        PrometheusSink {
            settings,
            endpoint,
            skipped: 0,
            last_update: None,
        }
    }

    /// The listener as this runtime's: the socket bound at start, so that a
    /// restarted sink listens on it again without a moment of refused
    /// connections (they wait in the kernel's queue meanwhile).
    fn listener(&self) -> std::io::Result<tokio::net::TcpListener> {
        tokio::net::TcpListener::from_std(self.settings.listener.try_clone()?)
    }

    fn update(&mut self, message: &SendLinesAcked) {
        // A snapshot that panics the conversion would panic it again after
        // every restart: logged and acknowledged, the previous one stays.
        let converted = catch_unwind(AssertUnwindSafe(|| {
            // Fault injection for the test below; not in releases.
            #[cfg(test)]
            if message.ts == INJECT_PANIC_TS {
                panic!("injected conversion panic");
            }
            convert(
                message.lines.chunks(),
                &self.settings.layout,
                message.of.cluster(),
            )
        }));
        match converted {
            Ok(converted) => {
                if converted.skipped > 0 {
                    tracing::debug!(
                        skipped = converted.skipped,
                        ts = message.ts,
                        "prometheus: lines that are no known metric are not served"
                    );
                }
                self.skipped += converted.skipped;
                self.settings.served.replace(
                    message.of.lb().map(str::to_owned),
                    message.ts,
                    converted.exposition,
                );
                self.last_update = Some(crate::common::unix_now());
            }
            Err(panic) => tracing::error!(
                ts = message.ts,
                lb = message.of.lb().unwrap_or(""),
                error = crate::common::panic_message(panic.as_ref()),
                "prometheus: cannot convert a snapshot; the previous one is still served"
            ),
        }
    }
}

impl Actor for PrometheusSink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.listener() {
            Ok(listener) => {
                ctx.spawn(serve(listener, Arc::clone(&self.endpoint)).into_actor(self));
            }
            Err(error) => {
                // Stopped, the sink is started again by its supervisor,
                // with backoff.
                tracing::error!(error = %error, "prometheus: cannot listen on the bound socket");
                ctx.stop();
            }
        }
    }
}

impl Handler<SendLinesAcked> for PrometheusSink {
    type Result = ();

    fn handle(&mut self, message: SendLinesAcked, _: &mut Context<Self>) {
        self.update(&message);
        let _ = message.written.send(());
    }
}

impl Handler<Flush> for PrometheusSink {
    type Result = u64;

    /// Every snapshot is served by the time its message is answered.
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> u64 {
        0
    }
}

impl Handler<GetSinkHealth> for PrometheusSink {
    type Result = SinkHealth;

    fn handle(&mut self, _: GetSinkHealth, _: &mut Context<Self>) -> SinkHealth {
        SinkHealth {
            backlog: 0,
            capacity: 0,
            dropped: 0,
            last_delivery: self.last_update,
            cannot_deliver: None,
            metrics: vec![
                ("PrometheusSeries", self.settings.served.series()),
                (
                    "PrometheusScrapes",
                    self.endpoint.scrapes.load(Ordering::Relaxed),
                ),
                ("PrometheusSkippedLines", self.skipped),
                (
                    "PrometheusShedConnections",
                    self.endpoint.shed.load(Ordering::Relaxed),
                ),
                (
                    "PrometheusWriteTimeouts",
                    self.endpoint.write_timeouts.load(Ordering::Relaxed),
                ),
            ],
        }
    }
}

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<crate::common::Crash> for PrometheusSink {
    type Result = ();

    fn handle(&mut self, _: crate::common::Crash, _: &mut Context<Self>) {
        panic!("injected prometheus sink crash");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::chunks::SharedLines;
    use crate::sink::paths::PathLayout;

    #[actix_rt::test]
    async fn a_snapshot_that_panics_the_conversion_is_acknowledged_and_the_previous_one_stays() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let settings = Arc::new(Settings {
            listener,
            path: "/metrics".into(),
            layout: PathLayout::test_node(),
            served: Arc::default(),
            limits: crate::sink::prometheus::server::Limits {
                header_timeout: crate::sink::prometheus::server::HEADER_TIMEOUT,
                write_timeout: std::time::Duration::from_secs(30),
                max_connections: 256,
            },
        });
        let sink = PrometheusSink::new(Arc::clone(&settings)).start();
        let send = |ts: u64| {
            let (written, acknowledged) = tokio::sync::oneshot::channel();
            sink.do_send(SendLinesAcked {
                of: crate::sink::messages::LinesOf::Own,
                ts,
                lines: SharedLines::from(
                    format!("ns.lb1.haproxy.daemon.Tasks {ts} {ts}\n").into_bytes(),
                ),
                written,
            });
            acknowledged
        };
        assert!(send(5).await.is_ok());
        assert!(send(INJECT_PANIC_TS).await.is_ok(), "acknowledged");
        let page = String::from_utf8(settings.served.page().to_vec()).expect("utf-8");
        assert!(
            page.ends_with("haproxystats_daemon_tasks{host=\"lb1\"} 5\n"),
            "{page}"
        );
        // The actor goes on.
        assert!(send(20).await.is_ok());
        let health = sink.send(GetSinkHealth).await.expect("health");
        assert_eq!(health.metrics[0], ("PrometheusSeries", 1));
        let page = String::from_utf8(settings.served.page().to_vec()).expect("utf-8");
        assert!(page.ends_with("} 20\n"), "{page}");
    }
}
