//! Table-driven configuration tests (SPEC §2): every option's type error,
//! interpolation, `[DEFAULT]` inheritance, `-d` ordering, ConfigParser's
//! boolean spellings and the seed README's two example files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use haproxystats::config::{
    Config, ConfigError, ConfigSources, LoadedConfig, LogLevel, Retries, StatsEndpoint,
};
use haproxystats::raw::Fields;
use haproxystats::sink::kafka::format::Format;
use haproxystats::sink::kafka::settings::Compression;
use haproxystats::sink::local_store::{LocalStoreConfig, LocalStoreSection};

/// Read with every sink's section, as the program does.
fn load_str(text: &str) -> Result<LoadedConfig, ConfigError> {
    haproxystats::config::load_str(text, &haproxystats::sink::options())
}

/// Read with every sink's section, as the program does.
fn load(sources: &ConfigSources) -> Result<LoadedConfig, ConfigError> {
    haproxystats::config::load(sources, &haproxystats::sink::options())
}

/// `[local-store]`, when declared.
fn local_store(config: &Config) -> Option<&LocalStoreConfig> {
    config.sinks.get::<LocalStoreSection>()
}

fn ok(text: &str) -> LoadedConfig {
    load_str(text).unwrap_or_else(|e| panic!("expected a valid configuration, got: {e}\n{text}"))
}

fn err(text: &str) -> ConfigError {
    match load_str(text) {
        Ok(loaded) => panic!("expected an error, got {:?}\n{text}", loaded.config),
        Err(e) => e,
    }
}

type Check = fn(&Config) -> bool;

/// Valid inputs and a property of the result.
const VALID: &[(&str, &str, Check)] = &[
    ("empty file = defaults", "", |c| *c == Config::defaults()),
    ("comments only", "# a\n; b\n   # indented\n", |c| {
        *c == Config::defaults()
    }),
    ("no [kafka]: off", "", |c| c.kafka.is_none()),
    (
        "kafka defaults",
        "[kafka]\nbrokers = 127.0.0.1:9092\n",
        |c| {
            c.kafka.as_ref().is_some_and(|k| {
                k.brokers == "127.0.0.1:9092"
                    && k.topic == "haproxystats.metrics"
                    && k.format == Format::Graphite
                    && k.key.is_none()
                    && k.message_max_bytes == 1_000_000
                    && k.compression == Compression::Zstd
                    && k.queue_size == 1_000_000
                    && k.message_timeout == Duration::from_secs(300)
                    && k.librdkafka.is_empty()
                    && k.snapshots_topic.is_none()
                    && k.cluster == "default"
                    && k.lb_name.is_none()
                    && k.snapshot_fields == Fields::Engine
                    && !k.topic_set
            })
        },
    ),
    (
        "kafka topic set in the file, even to its default",
        "[kafka]\nbrokers = a:1\ntopic = haproxystats.metrics\n",
        |c| c.kafka.as_ref().is_some_and(|k| k.topic_set),
    ),
    (
        "kafka librdkafka bounds that leave room for message-max-bytes",
        "[kafka]\nbrokers = a:1\nmessage-max-bytes = 5000\nlibrdkafka.message.max.bytes = 5000\n\
         librdkafka.queue.buffering.max.kbytes = 5\n",
        |c| {
            c.kafka
                .as_ref()
                .is_some_and(|k| k.message_max_bytes == 5000)
        },
    ),
    (
        "process and central workers up to 1024",
        "[process]\nworkers = 1024\n[central]\nworkers = 1024\n",
        |c| {
            c.process.workers == 1024
                && c.central.as_ref().and_then(|central| central.workers) == Some(1024)
        },
    ),
    ("processes locally by default", "", |c| c.process.local),
    (
        "an edge: local = false, publishing raw snapshots",
        "[process]\nlocal = false\n[kafka]\nbrokers = a:1\nsnapshots-topic = raw\n\
         cluster = eu-west\nlb-name = lb-7\nsnapshot-fields = all\n",
        |c| {
            !c.process.local
                && c.kafka.as_ref().is_some_and(|k| {
                    k.snapshots_topic.as_deref() == Some("raw")
                        && k.cluster == "eu-west"
                        && k.lb_name.as_deref() == Some("lb-7")
                        && k.snapshot_fields == Fields::All
                })
        },
    ),
    (
        "graphite off with kafka on",
        "[graphite]\nenabled = false\n[kafka]\nbrokers = a:1\n",
        |c| !c.graphite.enabled && c.kafka.is_some(),
    ),
    (
        "kafka influx, a key, librdkafka options in file order",
        "[kafka]\nbrokers = a:1, b:2\nformat = influx\nkey = lb7\ncompression = lz4\n\
         librdkafka.linger.ms = 5\nlibrdkafka.client.id = hs\n",
        |c| {
            c.kafka.as_ref().is_some_and(|k| {
                k.format == Format::Influx
                    && k.key.as_deref() == Some("lb7")
                    && k.compression == Compression::Lz4
                    && k.librdkafka
                        == [
                            ("linger.ms".to_owned(), "5".to_owned()),
                            ("client.id".to_owned(), "hs".to_owned()),
                        ]
            })
        },
    ),
    ("pull retries int", "[pull]\nretries = 5\n", |c| {
        c.pull.retries == Retries::Times(5)
    }),
    ("pull retries forever", "[pull]\nretries = -1\n", |c| {
        c.pull.retries == Retries::Forever
    }),
    ("pull retries zero", "[pull]\nretries = 0\n", |c| {
        c.pull.retries == Retries::Times(0)
    }),
    ("pull timeout float", "[pull]\ntimeout = 0.25\n", |c| {
        c.pull.timeout == Duration::from_millis(250)
    }),
    ("pull timeout exponent", "[pull]\ntimeout = 1e-3\n", |c| {
        c.pull.timeout == Duration::from_millis(1)
    }),
    (
        "pull interval int as float",
        "[pull]\ninterval = 3\n",
        |c| c.pull.interval == Duration::from_secs(3),
    ),
    (
        "pull-timeout 0 = unbounded",
        "[pull]\npull-timeout = 0\n",
        |c| c.pull.pull_timeout.is_none(),
    ),
    ("pull-interval", "[pull]\npull-interval = 1\n", |c| {
        c.pull.pull_interval == Duration::from_secs(1)
    }),
    (
        "buffer-limit underscores",
        "[pull]\nbuffer-limit = 1_000_000\n",
        |c| c.pull.buffer_limit == 1_000_000,
    ),
    ("pull workers", "[pull]\nworkers = 2\n", |c| {
        c.pull.workers == 2
    }),
    ("pull queue-size", "[pull]\nqueue-size = 10\n", |c| {
        c.pull.queue_size == 10
    }),
    (
        "pull master-worker-limit",
        "[pull]\nmaster-worker-limit = 4\n",
        |c| c.pull.master_worker_limit == 4,
    ),
    (
        "servers unix and tcp",
        "[pull]\nservers = unix:///run/a.sock, tcp://10.0.0.1:5555\n",
        |c| {
            c.pull.servers
                == vec![
                    StatsEndpoint::Unix(PathBuf::from("/run/a.sock")),
                    StatsEndpoint::Tcp {
                        host: "10.0.0.1".into(),
                        port: 5555,
                    },
                ]
        },
    ),
    (
        "servers master and http",
        "[pull]\nservers = master:///run/haproxy-master.sock, https://lb1:8404/stats, http://[::1]/\n",
        |c| {
            let Some(StatsEndpoint::Http(https)) = c.pull.servers.get(1) else {
                return false;
            };
            let Some(StatsEndpoint::Http(v6)) = c.pull.servers.get(2) else {
                return false;
            };
            c.pull.servers.first()
                == Some(&StatsEndpoint::Master(PathBuf::from(
                    "/run/haproxy-master.sock",
                )))
                && https.tls
                && https.host_port() == "lb1:8404"
                && https.csv_path() == "/stats;csv"
                && https.credentials.is_none()
                && !v6.tls
                && v6.host_port() == "[::1]:80"
        },
    ),
    (
        "empty socket-dir with servers",
        "[pull]\nsocket-dir =\nservers = tcp://h:1\n",
        |c| c.pull.socket_dir.is_none(),
    ),
    ("process workers", "[process]\nworkers = 1\n", |c| {
        c.process.workers == 1
    }),
    (
        "liveness-check-interval float",
        "[process]\nliveness-check-interval = 2.5\n",
        |c| c.process.liveness_check_interval == Duration::from_millis(2500),
    ),
    (
        "frontend-metrics list",
        "[process]\nfrontend-metrics = bin  bout\n",
        |c| {
            c.process.frontend_metrics.explicit
                && c.process
                    .frontend_metrics
                    .metrics
                    .iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    == ["bin", "bout"]
        },
    ),
    (
        "backend-metrics accepts means",
        "[process]\nbackend-metrics = rtime act lbtot\n",
        |c| c.process.backend_metrics.metrics.len() == 3,
    ),
    (
        "server-metrics accepts means",
        "[process]\nserver-metrics = throttle qtime\n",
        |c| c.process.server_metrics.metrics.len() == 2,
    ),
    (
        "metric list duplicates collapse",
        "[process]\nfrontend-metrics = bin bin\n",
        |c| c.process.frontend_metrics.metrics.len() == 1,
    ),
    (
        "exclude files",
        "[process]\nexclude-frontends = /etc/fe\nexclude-backends = /etc/be\n",
        |c| {
            c.process.exclude_frontends.as_deref() == Some(Path::new("/etc/fe"))
                && c.process.exclude_backends.as_deref() == Some(Path::new("/etc/be"))
        },
    ),
    ("graphite port", "[graphite]\nport = 2003\n", |c| {
        c.graphite.port == 2003
    }),
    ("graphite retries", "[graphite]\nretries = -1\n", |c| {
        c.graphite.retries == Retries::Forever
    }),
    (
        "graphite timeouts",
        "[graphite]\nconnect-timeout = 0.5\nwrite-timeout = 2\n",
        |c| {
            c.graphite.connect_timeout == Duration::from_millis(500)
                && c.graphite.write_timeout == Duration::from_secs(2)
        },
    ),
    (
        "graphite timeout ignored as by the original",
        "[graphite]\ntimeout = 7\n",
        |c| c.graphite.connect_timeout == Duration::from_secs(1),
    ),
    (
        "graphite backoff float",
        "[graphite]\nbackoff = 1.5\n",
        |c| c.graphite.backoff == 1.5,
    ),
    ("graphite delay", "[graphite]\ndelay = 0\n", |c| {
        c.graphite.delay.is_zero()
    }),
    (
        "graphite replay-bytes (ours)",
        "[graphite]\nreplay-bytes = 0\n",
        |c| c.graphite.replay_bytes == 0,
    ),
    ("graphite queue-size", "[graphite]\nqueue-size = 5\n", |c| {
        c.graphite.queue_size == 5
    }),
    ("namespace", "[graphite]\nnamespace = lb.eu\n", |c| {
        c.graphite.namespace == "lb.eu"
    }),
    (
        "bool yes/no",
        "[graphite]\nprefix-hostname = no\nfqdn = yes\n",
        |c| !c.graphite.prefix_hostname && c.graphite.fqdn,
    ),
    (
        "bool on/off",
        "[graphite]\nprefix-hostname = off\nfqdn = on\n",
        |c| !c.graphite.prefix_hostname && c.graphite.fqdn,
    ),
    (
        "bool 1/0",
        "[process]\naggr-server-metrics = 1\nper-process-metrics = 0\n",
        |c| c.process.aggr_server_metrics && !c.process.per_process_metrics,
    ),
    (
        "bool case-insensitive",
        "[process]\ncalculate-percentages = TRUE\naggr-server-metrics = False\n",
        |c| c.process.calculate_percentages && !c.process.aggr_server_metrics,
    ),
    (
        "keys are case-insensitive",
        "[graphite]\nPORT = 1234\n",
        |c| c.graphite.port == 1234,
    ),
    ("colon delimiter", "[graphite]\nport: 1235\n", |c| {
        c.graphite.port == 1235
    }),
    (
        "loglevel names",
        "[pull]\nloglevel = WARNING\n[process]\nloglevel = critical\n",
        |c| c.pull.loglevel == LogLevel::Warning && c.process.loglevel == LogLevel::Critical,
    ),
    (
        "DEFAULT loglevel inherited",
        "[DEFAULT]\nloglevel = debug\n",
        |c| c.pull.loglevel == LogLevel::Debug && c.process.loglevel == LogLevel::Debug,
    ),
    (
        "section loglevel beats DEFAULT",
        "[DEFAULT]\nloglevel = debug\n[pull]\nloglevel = error\n",
        |c| c.pull.loglevel == LogLevel::Error && c.process.loglevel == LogLevel::Debug,
    ),
    (
        "DEFAULT does not beat built-in section values",
        "[DEFAULT]\nretries = 9\ntimeout = 9\n",
        |c| c.pull.retries == Retries::Times(1) && c.graphite.retries == Retries::Times(3),
    ),
    (
        "interpolation same section",
        "[pull]\nroot = /x\ndst-dir = ${root}/in\ntmp-dst-dir = ${root}/tmp\n",
        |c| c.pull.dst_dir == Path::new("/x/in") && c.pull.tmp_dst_dir == Path::new("/x/tmp"),
    ),
    (
        "interpolation cross-section",
        "[paths]\nbase-dir = /b\n[process]\nsrc-dir = ${paths:base-dir}/incoming\n",
        |c| c.process.src_dir == Path::new("/b/incoming"),
    ),
    (
        "interpolation from DEFAULT",
        "[DEFAULT]\nroot = /d\n[process]\nsrc-dir = ${root}/s\n",
        |c| c.process.src_dir == Path::new("/d/s"),
    ),
    (
        "interpolation of a DEFAULT value in section context",
        "[DEFAULT]\nexclude-frontends = ${name}/fe\n[process]\nname = /p\n",
        |c| c.process.exclude_frontends.as_deref() == Some(Path::new("/p/fe")),
    ),
    (
        "nested interpolation",
        "[paths]\nbase-dir = /n\n[pull]\na = ${paths:base-dir}/a\nb = ${a}/b\ndst-dir = ${b}/c\n",
        |c| c.pull.dst_dir == Path::new("/n/a/b/c"),
    ),
    (
        "cross-section reference interpolates in its own section",
        "[a]\nx = ax\ny = ${x}\n[pull]\nx = px\ndst-dir = /${a:y}\n",
        |c| c.pull.dst_dir == Path::new("/ax"),
    ),
    ("$$ is a literal dollar", "[pull]\ndst-dir = /a$$b\n", |c| {
        c.pull.dst_dir == Path::new("/a$b")
    }),
    (
        "reference key is case-insensitive",
        "[paths]\nbase-dir = /k\n[pull]\ndst-dir = ${paths:BASE-DIR}/x\n",
        |c| c.pull.dst_dir == Path::new("/k/x"),
    ),
    (
        "multi-line value continues",
        "[process]\nfrontend-metrics = bin\n  bout\n",
        |c| c.process.frontend_metrics.metrics.len() == 2,
    ),
    (
        "local-store section enables it",
        "[local-store]\ndir = /ls\n",
        |c| local_store(c).map(|s| s.dir.as_path()) == Some(Path::new("/ls")),
    ),
    (
        "local-store without dir uses the documented default",
        "[local-store]\n",
        |c| {
            local_store(c).map(|s| s.dir.as_path())
                == Some(Path::new("/var/lib/haproxystats/local-store"))
        },
    ),
    ("no local-store section, disabled", "[paths]\n", |c| {
        local_store(c).is_none()
    }),
    ("graphite is on by default", "", |c| c.graphite.enabled),
    (
        "graphite off with local-store on",
        "[graphite]\nenabled = false\n[local-store]\ndir = /ls\n",
        |c| !c.graphite.enabled && local_store(c).is_some(),
    ),
    (
        "groups with namespace",
        "[graphite]\ngroup-namespace = grp\n[frontend-groups]\nWeb = ^www\\d+$$\napi = api\n",
        |c| {
            c.groups.frontend.len() == 2
                && c.groups.frontend[0].name == "web"
                && c.groups.frontend[0].pattern.as_str() == "^www\\d+$"
                && c.graphite.group_namespace.as_deref() == Some("grp")
                && !c.graphite.group_namespace_double_writes
        },
    ),
    (
        "groups skip DEFAULT keys",
        "[DEFAULT]\nfoo = bar\n[graphite]\ngroup-namespace = g\ngroup-namespace-double-writes = true\n[backend-groups]\nb = x\n",
        |c| c.groups.backend.len() == 1 && c.graphite.group_namespace_double_writes,
    ),
    (
        "tcp server with an IPv6 address",
        "[pull]\nservers = tcp://[::1]:5555\n",
        |c| {
            c.pull.servers
                == vec![StatsEndpoint::Tcp {
                    host: "::1".into(),
                    port: 5555,
                }]
        },
    ),
];

/// Invalid inputs: the error kind and text that must appear in the one line.
const INVALID: &[(&str, &str, &str, &str)] = &[
    (
        "pull retries not int",
        "[pull]\nretries = many\n",
        "invalid",
        "[pull] retries = 'many': not an integer",
    ),
    (
        "pull retries below -1",
        "[pull]\nretries = -2\n",
        "invalid",
        "[pull] retries = '-2'",
    ),
    (
        "pull timeout not float",
        "[pull]\ntimeout = fast\n",
        "invalid",
        "[pull] timeout = 'fast': not a number",
    ),
    (
        "pull timeout negative",
        "[pull]\ntimeout = -1\n",
        "invalid",
        "[pull] timeout = '-1'",
    ),
    (
        "pull interval nan",
        "[pull]\ninterval = nan\n",
        "invalid",
        "[pull] interval = 'nan'",
    ),
    (
        "pull-timeout not float",
        "[pull]\npull-timeout = x\n",
        "invalid",
        "[pull] pull-timeout = 'x'",
    ),
    (
        "pull-interval float",
        "[pull]\npull-interval = 1.5\n",
        "invalid",
        "[pull] pull-interval = '1.5': not an integer",
    ),
    (
        "pull-interval zero",
        "[pull]\npull-interval = 0\n",
        "invalid",
        "[pull] pull-interval = '0': must be at least 1",
    ),
    (
        "buffer-limit zero",
        "[pull]\nbuffer-limit = 0\n",
        "invalid",
        "[pull] buffer-limit = '0': must be at least 1",
    ),
    (
        "buffer-limit not int",
        "[pull]\nbuffer-limit = 6M\n",
        "invalid",
        "[pull] buffer-limit = '6M'",
    ),
    (
        "pull workers zero",
        "[pull]\nworkers = 0\n",
        "invalid",
        "[pull] workers = '0'",
    ),
    (
        "pull queue-size text",
        "[pull]\nqueue-size = lots\n",
        "invalid",
        "[pull] queue-size = 'lots'",
    ),
    (
        "pull master-worker-limit too large",
        "[pull]\nmaster-worker-limit = 4097\n",
        "invalid",
        "[pull] master-worker-limit = '4097': must be at most 4096",
    ),
    (
        "empty dst-dir",
        "[pull]\ndst-dir =\n",
        "invalid",
        "[pull] dst-dir = '': empty path",
    ),
    (
        "nothing to pull",
        "[pull]\nsocket-dir =\n",
        "invalid",
        "[pull] socket-dir",
    ),
    (
        "servers bad scheme",
        "[pull]\nservers = ftp://x:1\n",
        "invalid",
        "only unix://, tcp://, master:// and http(s):// servers are supported",
    ),
    (
        "servers master without absolute path",
        "[pull]\nservers = master://run/m.sock\n",
        "invalid",
        "a master CLI socket needs an absolute path",
    ),
    (
        "servers http bad port",
        "[pull]\nservers = http://lb:0/stats\n",
        "invalid",
        "'http://lb:0/stats': port is not a number from 1 to 65535",
    ),
    (
        "servers http user without password",
        "[pull]\nservers = http://admin@lb:1/stats\n",
        "invalid",
        "credentials must be user:password",
    ),
    (
        "servers tcp without port",
        "[pull]\nservers = tcp://host\n",
        "invalid",
        "port is not set",
    ),
    (
        "servers tcp bad port",
        "[pull]\nservers = tcp://host:99999\n",
        "invalid",
        "port is not a number",
    ),
    (
        "servers unix without path",
        "[pull]\nservers = unix://\n",
        "invalid",
        "absolute path",
    ),
    (
        "servers empty entry",
        "[pull]\nservers = tcp://h:1,,tcp://h:2\n",
        "invalid",
        "empty entry",
    ),
    (
        "loglevel unknown",
        "[pull]\nloglevel = verbose\n",
        "invalid",
        "[pull] loglevel = 'verbose': not a log level",
    ),
    (
        "DEFAULT loglevel unknown",
        "[DEFAULT]\nloglevel = loud\n",
        "invalid",
        "loglevel = 'loud'",
    ),
    (
        "process workers text",
        "[process]\nworkers = four\n",
        "invalid",
        "[process] workers = 'four'",
    ),
    (
        "process src-dir empty",
        "[process]\nsrc-dir =\n",
        "invalid",
        "[process] src-dir",
    ),
    (
        "aggr-server-metrics not bool",
        "[process]\naggr-server-metrics = maybe\n",
        "invalid",
        "[process] aggr-server-metrics = 'maybe': not a boolean",
    ),
    (
        "per-process-metrics not bool",
        "[process]\nper-process-metrics = 2\n",
        "invalid",
        "[process] per-process-metrics = '2'",
    ),
    (
        "calculate-percentages not bool",
        "[process]\ncalculate-percentages = y\n",
        "invalid",
        "[process] calculate-percentages = 'y'",
    ),
    (
        "liveness-check-interval text",
        "[process]\nliveness-check-interval = soon\n",
        "invalid",
        "[process] liveness-check-interval",
    ),
    (
        "frontend metric unknown",
        "[process]\nfrontend-metrics = bin nosuch\n",
        "invalid",
        "'nosuch' is not a valid metric name",
    ),
    (
        "frontend metric from backends",
        "[process]\nfrontend-metrics = lbtot\n",
        "invalid",
        "'lbtot'",
    ),
    (
        "backend metric unknown",
        "[process]\nbackend-metrics = wat\n",
        "invalid",
        "[process] backend-metrics = 'wat'",
    ),
    (
        "server metric unknown",
        "[process]\nserver-metrics = req_tot\n",
        "invalid",
        "[process] server-metrics",
    ),
    (
        "metric list empty",
        "[process]\nserver-metrics =\n",
        "invalid",
        "empty list of metrics",
    ),
    (
        "graphite port text",
        "[graphite]\nport = abc\n",
        "invalid",
        "[graphite] port = 'abc': not an integer",
    ),
    (
        "graphite port range",
        "[graphite]\nport = 70000\n",
        "invalid",
        "[graphite] port = '70000': not a port number",
    ),
    (
        "graphite port zero",
        "[graphite]\nport = 0\n",
        "invalid",
        "not a port number",
    ),
    (
        "graphite retries text",
        "[graphite]\nretries = x\n",
        "invalid",
        "[graphite] retries = 'x'",
    ),
    (
        "graphite interval text",
        "[graphite]\ninterval = x\n",
        "invalid",
        "[graphite] interval = 'x'",
    ),
    (
        "graphite connect-timeout negative",
        "[graphite]\nconnect-timeout = -0.5\n",
        "invalid",
        "[graphite] connect-timeout = '-0.5'",
    ),
    (
        "graphite write-timeout text",
        "[graphite]\nwrite-timeout = x\n",
        "invalid",
        "[graphite] write-timeout = 'x'",
    ),
    (
        "graphite delay text",
        "[graphite]\ndelay = later\n",
        "invalid",
        "[graphite] delay = 'later'",
    ),
    (
        "graphite backoff zero",
        "[graphite]\nbackoff = 0\n",
        "invalid",
        "[graphite] backoff = '0'",
    ),
    (
        "graphite backoff text",
        "[graphite]\nbackoff = x\n",
        "invalid",
        "[graphite] backoff = 'x'",
    ),
    (
        "graphite namespace blank",
        "[graphite]\nnamespace = a b\n",
        "invalid",
        "[graphite] namespace = 'a b'",
    ),
    (
        "graphite prefix-hostname not bool",
        "[graphite]\nprefix-hostname = sure\n",
        "invalid",
        "[graphite] prefix-hostname = 'sure'",
    ),
    (
        "graphite fqdn not bool",
        "[graphite]\nfqdn = 2\n",
        "invalid",
        "[graphite] fqdn = '2'",
    ),
    (
        "graphite queue-size zero",
        "[graphite]\nqueue-size = 0\n",
        "invalid",
        "[graphite] queue-size = '0'",
    ),
    (
        "double-writes not bool",
        "[graphite]\ngroup-namespace = g\ngroup-namespace-double-writes = twice\n[server-groups]\na = b\n",
        "invalid",
        "group-namespace-double-writes = 'twice'",
    ),
    (
        "group regex invalid",
        "[graphite]\ngroup-namespace = g\n[frontend-groups]\nbad = (unclosed\n",
        "invalid",
        "[frontend-groups] bad = '(unclosed': not a valid regex",
    ),
    (
        "groups without namespace",
        "[backend-groups]\nb = x\n",
        "inconsistent",
        "group-namespace is not",
    ),
    (
        "graphite off and no other sink",
        "[graphite]\nenabled = false\n",
        "inconsistent",
        "[graphite] enabled = false and none of [local-store], [kafka], [prometheus], [remote-write]: no sink is left",
    ),
    (
        "an edge that publishes nothing",
        "[process]\nlocal = false\n[kafka]\nbrokers = a:1\n",
        "inconsistent",
        "[process] local = false and no [kafka] snapshots-topic",
    ),
    (
        "an edge without kafka",
        "[process]\nlocal = false\n",
        "inconsistent",
        "[process] local = false and no [kafka] snapshots-topic",
    ),
    (
        "graphite enabled not a boolean",
        "[graphite]\nenabled = sometimes\n",
        "invalid",
        "[graphite] enabled = 'sometimes'",
    ),
    (
        "namespace without groups",
        "[graphite]\ngroup-namespace = g\n",
        "inconsistent",
        "no [frontend-groups]",
    ),
    (
        "missing reference",
        "[pull]\ndst-dir = ${nope}/x\n",
        "interpolation",
        "[pull] dst-dir = '${nope}/x': bad interpolation: '${nope}' refers to an option that does not exist",
    ),
    (
        "missing section reference",
        "[pull]\ndst-dir = ${nosection:key}\n",
        "interpolation",
        "'${nosection:key}'",
    ),
    (
        "reference cycle",
        "[pull]\na = ${b}\nb = ${a}\ndst-dir = ${a}\n",
        "interpolation",
        "nested references",
    ),
    (
        "self reference",
        "[pull]\ndst-dir = ${dst-dir}\n",
        "interpolation",
        "nested references",
    ),
    (
        "lone dollar",
        "[pull]\ndst-dir = /a$b\n",
        "interpolation",
        "'$' must be followed by '$' or '{'",
    ),
    (
        "unclosed reference",
        "[pull]\ndst-dir = ${paths:base-dir\n",
        "interpolation",
        "unclosed reference",
    ),
    (
        "two colons",
        "[pull]\ndst-dir = ${a:b:c}\n",
        "interpolation",
        "more than one ':'",
    ),
    (
        "duplicate option in one file",
        "[graphite]\nport = 1\nport = 2\n",
        "duplicate",
        "[graphite] port appears more than once",
    ),
    (
        "duplicate section in one file",
        "[graphite]\nport = 1\n[graphite]\nserver = x\n",
        "duplicate",
        "[graphite] appears more than once",
    ),
    (
        "option before any section",
        "port = 1\n[graphite]\n",
        "no_section",
        "option 'port' appears before any [section]",
    ),
    (
        "kafka without brokers",
        "[kafka]\ntopic = t\n",
        "invalid",
        "[kafka] brokers = '': empty",
    ),
    (
        "kafka broker without port",
        "[kafka]\nbrokers = a:1,b\n",
        "invalid",
        "'b' is not host:port",
    ),
    (
        "kafka unknown format",
        "[kafka]\nbrokers = a:1\nformat = json\n",
        "invalid",
        "[kafka] format = 'json': not a format (graphite, influx)",
    ),
    (
        "kafka unknown compression",
        "[kafka]\nbrokers = a:1\ncompression = brotli\n",
        "invalid",
        "[kafka] compression = 'brotli': not a compression",
    ),
    (
        "kafka topic with a blank",
        "[kafka]\nbrokers = a:1\ntopic = a b\n",
        "invalid",
        "[kafka] topic = 'a b'",
    ),
    (
        "kafka message-max-bytes too small",
        "[kafka]\nbrokers = a:1\nmessage-max-bytes = 100\n",
        "invalid",
        "[kafka] message-max-bytes = '100': must be at least",
    ),
    (
        "kafka unknown librdkafka option",
        "[kafka]\nbrokers = a:1\nlibrdkafka.no.such.option = 1\n",
        "invalid",
        "no.such.option",
    ),
    (
        "kafka snapshots-topic that is not a topic name",
        "[kafka]\nbrokers = a:1\nsnapshots-topic = raw/snaps\n",
        "invalid",
        "[kafka] snapshots-topic = 'raw/snaps': not a Kafka topic name",
    ),
    (
        "kafka snapshots-topic the same as topic",
        "[kafka]\nbrokers = a:1\ntopic = t\nsnapshots-topic = t\n",
        "invalid",
        "[kafka] snapshots-topic = 't': is also `topic`",
    ),
    (
        "kafka cluster with a dot",
        "[kafka]\nbrokers = a:1\ncluster = eu.west\n",
        "invalid",
        "[kafka] cluster = 'eu.west': must not hold '.'",
    ),
    (
        "kafka empty cluster",
        "[kafka]\nbrokers = a:1\ncluster =\n",
        "invalid",
        "[kafka] cluster = '': must not be empty",
    ),
    (
        "kafka lb-name with a blank",
        "[kafka]\nbrokers = a:1\nlb-name = lb 7\n",
        "invalid",
        "[kafka] lb-name = 'lb 7': must not hold blanks",
    ),
    (
        "kafka snapshot-fields not a choice",
        "[kafka]\nbrokers = a:1\nsnapshot-fields = some\n",
        "invalid",
        "[kafka] snapshot-fields = 'some': not a choice of fields (engine, all)",
    ),
    (
        "process local not a boolean",
        "[process]\nlocal = maybe\n",
        "invalid",
        "[process] local = 'maybe'",
    ),
    (
        "kafka bad librdkafka value",
        "[kafka]\nbrokers = a:1\nlibrdkafka.linger.ms = soon\n",
        "invalid",
        "librdkafka refuses the configuration",
    ),
    (
        "process workers beyond what a system can start",
        "[process]\nworkers = 1000000\n",
        "invalid",
        "[process] workers = '1000000': too large (at most 1024: each worker is a thread)",
    ),
    (
        "central workers beyond what a system can start",
        "[central]\nworkers = 1000000\n",
        "invalid",
        "[central] workers = '1000000': too large (at most 1024",
    ),
    (
        "kafka topic '..'",
        "[kafka]\nbrokers = a:1\ntopic = ..\n",
        "invalid",
        "[kafka] topic = '..': not a Kafka topic name",
    ),
    (
        "kafka snapshots-topic '.'",
        "[kafka]\nbrokers = a:1\nsnapshots-topic = .\n",
        "invalid",
        "[kafka] snapshots-topic = '.': not a Kafka topic name",
    ),
    (
        "central partials-topic '..'",
        "[central]\npartials-topic = ..\n",
        "invalid",
        "[central] partials-topic = '..': not a Kafka topic name",
    ),
    (
        "central state-topic longer than 249",
        "[central]\nstate-topic = xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
        "invalid",
        "[central] state-topic = 'xxxx",
    ),
    (
        "librdkafka.message.max.bytes below message-max-bytes",
        "[kafka]\nbrokers = a:1\nlibrdkafka.message.max.bytes = 1000\n",
        "invalid",
        "[kafka] librdkafka.message.max.bytes = '1000': below message-max-bytes = 1000000: librdkafka would refuse every message above it",
    ),
    (
        "librdkafka producer queue smaller than a message",
        "[kafka]\nbrokers = a:1\nlibrdkafka.queue.buffering.max.kbytes = 100\n",
        "invalid",
        "[kafka] librdkafka.queue.buffering.max.kbytes = '100': below message-max-bytes",
    ),
    (
        "message-max-bytes a consumer could not fetch",
        "[kafka]\nbrokers = a:1\nmessage-max-bytes = 200000000\n",
        "invalid",
        "[kafka] message-max-bytes = '200000000': above librdkafka's receive.message.max.bytes",
    ),
    (
        "unterminated section header",
        "[graphite\nport = 1\n",
        "syntax",
        "<string>:",
    ),
];

#[test]
fn valid_configurations_mean_what_they_say() {
    let mut failures = Vec::new();
    for (name, text, check) in VALID {
        match load_str(text) {
            Ok(loaded) if check(&loaded.config) => {}
            Ok(loaded) => failures.push(format!("{name}: unexpected value {:?}", loaded.config)),
            Err(e) => failures.push(format!("{name}: refused: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_configurations_are_refused_with_one_line_naming_them() {
    let mut failures = Vec::new();
    for (name, text, kind, needle) in INVALID {
        match load_str(text) {
            Ok(loaded) => failures.push(format!("{name}: accepted: {:?}", loaded.config)),
            Err(e) => {
                let line = e.to_string();
                if e.kind() != *kind || !line.contains(needle) || line.contains('\n') {
                    failures.push(format!(
                        "{name}: got [{}] {line}; want [{kind}] …{needle}…",
                        e.kind()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn there_are_at_least_sixty_cases() {
    assert!(VALID.len() + INVALID.len() >= 60);
}

#[test]
fn every_boolean_spelling_configparser_accepts() {
    for (spelling, expected) in [
        ("1", true),
        ("yes", true),
        ("true", true),
        ("on", true),
        ("0", false),
        ("no", false),
        ("false", false),
        ("off", false),
        ("Yes", true),
        ("ON", true),
        ("No", false),
        ("OFF", false),
    ] {
        let loaded = ok(&format!("[process]\naggr-server-metrics = {spelling}\n"));
        assert_eq!(
            loaded.config.process.aggr_server_metrics, expected,
            "{spelling}"
        );
    }
    for bad in ["y", "n", "t", "f", "2", "enabled", ""] {
        let e = err(&format!("[process]\naggr-server-metrics = {bad}\n"));
        assert_eq!(e.kind(), "invalid", "{bad}: {e}");
    }
}

#[test]
fn unknown_options_and_sections_warn_but_load() {
    let loaded = ok(
        "[graphite]\nprefix_hostname = false\nwat = 1\n[nosuch]\na = b\n[kafka]\nbrokers = x:1\nwat = 2\n",
    );
    let text: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|w| w.contains("prefix_hostname") && w.contains("did you mean 'prefix-hostname'")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|w| w.contains("[graphite] wat")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|w| w.contains("[nosuch]") && w.contains("unknown section")),
        "{text:?}"
    );
    assert!(text.iter().any(|w| w.contains("[kafka] wat")), "{text:?}");
    // The misspelt option does not take effect, as with the original.
    assert!(loaded.config.graphite.prefix_hostname);
}

#[test]
fn liveness_check_interval_is_accepted_but_said_to_be_ignored_unless_left_at_10() {
    let set = ok("[process]\nliveness-check-interval = 2\n");
    assert_eq!(
        set.config.process.liveness_check_interval,
        Duration::from_secs(2)
    );
    let text: Vec<String> = set.warnings.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|w| w.contains("[process] liveness-check-interval") && w.contains("ignored")),
        "{text:?}"
    );
    // The original's default, spelt out as its example configurations do.
    let original = ok("[process]\nliveness-check-interval = 10\n");
    assert!(original.warnings.is_empty(), "{:?}", original.warnings);
}

#[test]
fn default_keys_are_not_warned_about() {
    let loaded = ok("[DEFAULT]\nroot = /r\nretries = 4\n");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn load_file(path: &Path) -> LoadedConfig {
    load(&ConfigSources {
        file: path.to_path_buf(),
        file_is_explicit: true,
        dir: None,
    })
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn seed_readme_first_example_is_the_defaults() {
    let loaded = load_file(&fixture("seed-example-1.conf"));
    let c = &loaded.config;
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // The README says every value in it is the default.
    assert_eq!(*c, Config::defaults());
    assert_eq!(
        c.pull.socket_dir.as_deref(),
        Some(Path::new("/run/haproxy"))
    );
    assert_eq!(c.pull.dst_dir, Path::new("/var/lib/haproxystats/incoming"));
    assert_eq!(
        c.pull.tmp_dst_dir,
        Path::new("/var/lib/haproxystats/incoming.tmp")
    );
    assert_eq!(c.pull.timeout, Duration::from_millis(100));
    assert_eq!(c.pull.interval, Duration::from_millis(500));
    assert_eq!(c.pull.pull_timeout, Some(Duration::from_secs(2)));
    assert_eq!(c.pull.pull_interval, Duration::from_secs(10));
    assert_eq!(c.pull.workers, 8);
    assert_eq!(c.pull.queue_size, 360);
    assert_eq!(c.pull.master_worker_limit, 256);
    assert_eq!(c.process.workers, 4);
    assert!(!c.process.per_process_metrics);
    assert_eq!(c.graphite.server, "127.0.0.1");
    assert_eq!(c.graphite.port, 3002);
    assert_eq!(c.graphite.retries, Retries::Times(3));
    assert_eq!(c.graphite.interval, Duration::from_millis(1800));
    assert_eq!(c.graphite.delay, Duration::from_secs(10));
    assert_eq!(c.graphite.backoff, 2.0);
    assert_eq!(c.graphite.queue_size, 1_000_000);
    assert!(local_store(c).is_none(), "#[local-store] is commented out");
}

#[test]
fn seed_readme_second_example_means_what_the_readme_says() {
    let loaded = load_file(&fixture("seed-example-2.conf"));
    let c = &loaded.config;
    let base = Path::new("/home/<username>/repo/haproxystats/var/var/lib/haproxystats");
    assert_eq!(c.paths.base_dir, base);
    assert_eq!(c.pull.loglevel, LogLevel::Debug);
    assert_eq!(c.process.loglevel, LogLevel::Debug);
    assert_eq!(c.pull.pull_timeout, Some(Duration::from_secs(10)));
    assert_eq!(c.pull.dst_dir, base.join("incoming"));
    assert_eq!(c.process.src_dir, base.join("incoming"));
    assert_eq!(c.process.workers, 2);
    assert!(c.process.calculate_percentages && c.process.per_process_metrics);
    assert_eq!(c.graphite.port, 39991);
    assert_eq!(c.graphite.interval, Duration::from_millis(800));
    // `timeout = 0.9` in [graphite] was never used by the original either.
    assert_eq!(c.graphite.connect_timeout, Duration::from_secs(1));
    assert_eq!(c.graphite.queue_size, 1000);
    assert_eq!(
        local_store(c).map(|s| s.dir.clone()),
        Some(base.join("local-store"))
    );
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("prefix_hostname")));
    assert!(warnings.iter().any(|w| w.contains("[graphite] timeout")));
}

#[test]
fn conf_dir_is_read_after_the_file_sorted_and_later_wins() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let main = dir.path().join("main.conf");
    std::fs::write(
        &main,
        "[graphite]\nport = 1\nserver = main\n[paths]\nbase-dir = /m\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path().join("d");
    std::fs::create_dir(&d).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(d.join("b.conf"), "[graphite]\nport = 3\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(d.join("a.conf"), "[graphite]\nport = 2\nnamespace = a\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(d.join("c.conf.disabled"), "[graphite]\nport = 9\n")
        .unwrap_or_else(|e| panic!("{e}"));
    // A later file may refer to values of an earlier one.
    std::fs::write(
        d.join("z.conf"),
        "[process]\nsrc-dir = ${paths:base-dir}/z\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let loaded = load(&ConfigSources {
        file: main,
        file_is_explicit: true,
        dir: Some(d),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let g = &loaded.config.graphite;
    assert_eq!(
        (g.port, g.server.as_str(), g.namespace.as_str()),
        (3, "main", "a")
    );
    assert_eq!(loaded.config.process.src_dir, Path::new("/m/z"));
}

#[test]
fn missing_default_file_means_defaults_missing_explicit_file_is_an_error() {
    let missing = PathBuf::from("/nonexistent/haproxystats.conf");
    let implicit = load(&ConfigSources {
        file: missing.clone(),
        file_is_explicit: false,
        dir: None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(implicit.config, Config::defaults());
    let explicit = load(&ConfigSources {
        file: missing,
        file_is_explicit: true,
        dir: None,
    });
    assert!(matches!(explicit, Err(ConfigError::Read { .. })));
    let no_dir = load(&ConfigSources {
        file: PathBuf::from("/nonexistent/x"),
        file_is_explicit: false,
        dir: Some(PathBuf::from("/nonexistent/conf.d")),
    });
    assert!(matches!(no_dir, Err(ConfigError::Read { .. })));
}

#[test]
fn every_valid_case_round_trips_through_to_ini() {
    for (name, text, _) in VALID {
        let Ok(loaded) = load_str(text) else { continue };
        let printed = loaded.config.to_ini();
        let again =
            load_str(&printed).unwrap_or_else(|e| panic!("{name}: re-read failed: {e}\n{printed}"));
        assert_eq!(again.config, loaded.config, "{name}:\n{printed}");
        // Printing adds no warning: the printed text warns only about a
        // value the case itself set (an ignored liveness-check-interval).
        assert!(
            again.warnings.iter().all(|w| loaded.warnings.contains(w)),
            "{name}: {:?}",
            again.warnings
        );
    }
}

#[test]
fn dir_access_is_checked_only_when_asked() {
    // Loading never touches the directories it names…
    let loaded = ok("[process]\nsrc-dir = /nonexistent/src\n");
    // …a command asks before it starts.
    let e = haproxystats::config::check_dir_access(
        &loaded.config.process.src_dir,
        "process",
        "src-dir",
    )
    .expect_err("missing dir");
    assert_eq!(e.kind(), "access");
    assert!(
        e.to_string()
            .starts_with("invalid configuration: [process] src-dir = '/nonexistent/src'"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    haproxystats::config::check_dir_access(dir.path(), "process", "src-dir")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::read_dir(dir.path()).map(|d| d.count()).ok(),
        Some(0),
        "probe file removed"
    );
}

/// Refuses `text` with an error of `kind` whose one line contains `needle`.
fn refused(name: &str, text: &str, kind: &str, needle: &str, failures: &mut Vec<String>) {
    match load_str(text) {
        Ok(loaded) => failures.push(format!("{name}: accepted: {:?}", loaded.config)),
        Err(e) => {
            let line = e.to_string();
            if e.kind() != kind || !line.contains(needle) || line.contains(['\n', '\r', '\t']) {
                failures.push(format!(
                    "{name}: got [{}] {line:?}; want [{kind}] …{needle}…",
                    e.kind()
                ));
            }
        }
    }
}

/// Issue 12 item 4: names from the configuration become Graphite path
/// elements; one that would break a line or a path is refused at start.
#[test]
fn configuration_names_must_make_valid_graphite_paths() {
    let groups = "[graphite]\ngroup-namespace = g\n[backend-groups]\n";
    let mut failures = Vec::new();
    for (name, text, needle) in [
        (
            "group name with a blank",
            format!("{groups}my group = .\n"),
            "[backend-groups] my group = '.': the group name must not hold blanks",
        ),
        (
            "group name with a tab",
            format!("{groups}my\tgroup = x\n"),
            "[backend-groups] my\\tgroup = 'x'",
        ),
        (
            "group name with a dot",
            format!("{groups}a.b = x\n"),
            "must not hold '.'",
        ),
        (
            "namespace with empty components",
            "[graphite]\nnamespace = a..b.\n".into(),
            "[graphite] namespace = 'a..b.': has an empty path component",
        ),
        (
            "namespace with a leading dot",
            "[graphite]\nnamespace = .a\n".into(),
            "empty path component",
        ),
        (
            "namespace with a tab",
            "[graphite]\nnamespace = a\tb\n".into(),
            "[graphite] namespace = 'a\\tb': must not hold blanks",
        ),
        (
            "group-namespace with empty components",
            "[graphite]\ngroup-namespace = x..y\n[backend-groups]\nb = x\n".into(),
            "[graphite] group-namespace = 'x..y'",
        ),
        (
            "group-namespace with a blank",
            "[graphite]\ngroup-namespace = x y\n[backend-groups]\nb = x\n".into(),
            "[graphite] group-namespace = 'x y'",
        ),
        (
            "empty server",
            "[graphite]\nserver =\n".into(),
            "[graphite] server = '': must be a host name or address",
        ),
        (
            "server with a blank",
            "[graphite]\nserver = a b\n".into(),
            "[graphite] server = 'a b'",
        ),
    ] {
        refused(name, &text, "invalid", needle, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Dotted paths and plain names stay valid.
    let loaded = ok(
        "[graphite]\nnamespace = a.b-c\nserver = graphite.example\ngroup-namespace = x.y\n[backend-groups]\nweb_1 = ^web\n",
    );
    assert_eq!(loaded.config.graphite.namespace, "a.b-c");
    assert_eq!(loaded.config.graphite.server, "graphite.example");
}

/// Issue 12 item 7: one line, no Rust debug text, the line that is wrong,
/// control characters escaped, "too large" for numbers that are.
#[test]
fn errors_are_one_line_with_the_right_line_and_no_debug_text() {
    let mut failures = Vec::new();
    for (name, text, kind, needle) in [
        (
            "unclosed header",
            "[graphite\nport = 1\n",
            "syntax",
            "<string>:1: section header '[graphite' is not closed with ']'",
        ),
        (
            "unclosed header after others",
            "[graphite]\nport = 1\n\n# c\n[pull\n",
            "syntax",
            "<string>:5: section header '[pull'",
        ),
        (
            "option without value",
            "[graphite]\nport\nserver = x\n",
            "syntax",
            "<string>:2: 'port' is neither a [section] header nor an 'option = value' line",
        ),
        (
            "value without option",
            "[graphite]\n= 3\n",
            "syntax",
            "<string>:2: '= 3' has no option name",
        ),
        (
            "empty header",
            "[]\n",
            "syntax",
            "<string>:1: empty section name",
        ),
        (
            "continued value",
            "[graphite]\nport = 1\n  x = 2\n",
            "invalid",
            "[graphite] port = '1\\nx = 2': not an integer",
        ),
        (
            "escape sequence",
            "[graphite]\nport = 1\x1b[31m\n",
            "invalid",
            "[graphite] port = '1\\x1b[31m'",
        ),
        (
            "int too large",
            "[graphite]\nport = 99999999999999999999\n",
            "invalid",
            "port = '99999999999999999999': too large",
        ),
        (
            "count too large",
            "[pull]\nworkers = 99999999999999999999\n",
            "invalid",
            "too large",
        ),
        (
            "negative too large",
            "[pull]\nworkers = -99999999999999999999\n",
            "invalid",
            "too large a negative number",
        ),
        (
            "retries too large",
            "[pull]\nretries = 99999999999\n",
            "invalid",
            "too large (at most 4294967295)",
        ),
        (
            "seconds too large",
            "[pull]\ntimeout = 1e300\n",
            "invalid",
            "[pull] timeout = '1e300': too large",
        ),
        (
            "not an integer stays so",
            "[graphite]\nport = 1.5\n",
            "invalid",
            "not an integer",
        ),
    ] {
        refused(name, text, kind, needle, &mut failures);
        if let Err(e) = load_str(text)
            && e.to_string().contains("Some(")
        {
            failures.push(format!("{name}: debug text in {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn http_credentials_show_in_no_error_and_not_in_the_printed_configuration() {
    let refused = err("[pull]\nservers = tcp://h:1, http://admin:s3cret@lb:0/stats\n").to_string();
    assert!(refused.contains("http://***@lb:0/stats"), "{refused}");
    assert!(
        !refused.contains("s3cret") && !refused.contains("admin"),
        "{refused}"
    );

    let loaded = ok("[pull]\nservers = https://admin:s3cret@lb:8404/stats\n");
    let Some(StatsEndpoint::Http(url)) = loaded.config.pull.servers.first() else {
        panic!("{:?}", loaded.config.pull.servers);
    };
    assert!(
        url.credentials
            .as_ref()
            .is_some_and(|c| c.user == "admin" && c.password == "s3cret")
    );
    let printed = loaded.config.to_ini();
    assert!(
        printed.contains("servers = https://***@lb:8404/stats"),
        "{printed}"
    );
    assert!(
        !printed.contains("s3cret") && !printed.contains("admin"),
        "{printed}"
    );
    let shown = format!("{:?}", loaded.config);
    assert!(!shown.contains("s3cret"), "{shown}");
}

/// The names of issue 24 item 7 (each reached Graphite through a header,
/// and one a configuration could hold), with the reason each is refused.
fn names_graphite_would_not_store_as_sent() -> Vec<(String, &'static str)> {
    vec![
        ("x;evil=1".into(), "must not hold ';'"),
        ("c;k=v".into(), "must not hold ';'"),
        ("a*".into(), "must not hold * ? [ ] { }"),
        ("{a,b}".into(), "must not hold * ? [ ] { }"),
        ("b[1]".into(), "must not hold * ? [ ] { }"),
        ("lb\u{200b}x".into(), "holds U+200B"),
        (
            "a".repeat(300),
            "is longer than 255 bytes (carbon stores each path element as a file name): 300 bytes",
        ),
        ("lb/1".into(), "must not hold '/'"),
        ("eu/west".into(), "must not hold '/'"),
    ]
}

/// Issue 24 items 7 and 8: one name rule for every name of the
/// configuration that becomes a Graphite path element — `[kafka] lb-name`
/// and `cluster` (so that an edge refuses at start what central would
/// refuse), group names, and every element of `namespace`,
/// `group-namespace` and `cluster-namespace` — refused with one line
/// naming section, option, value and reason.
#[test]
fn every_configuration_name_follows_the_one_name_rule() {
    let mut failures = Vec::new();
    for (name, reason) in names_graphite_would_not_store_as_sent() {
        // A group name is an INI option name: '=' would end it.
        let cases = [
            (
                "kafka",
                "lb-name",
                format!("[kafka]\nbrokers = a:1\nlb-name = {name}\n"),
                name.clone(),
            ),
            (
                "kafka",
                "cluster",
                format!("[kafka]\nbrokers = a:1\ncluster = {name}\n"),
                name.clone(),
            ),
            (
                "graphite",
                "namespace",
                format!("[graphite]\nnamespace = lb.{name}\n"),
                format!("lb.{name}"),
            ),
            (
                "graphite",
                "group-namespace",
                format!("[graphite]\ngroup-namespace = {name}.g\n[backend-groups]\nb = x\n"),
                format!("{name}.g"),
            ),
            (
                "central",
                "cluster-namespace",
                format!("[central]\ncluster-namespace = dc.{name}\n"),
                format!("dc.{name}"),
            ),
        ];
        for (section, option, text, value) in cases {
            let needle = format!("[{section}] {option} = '{value}': ");
            refused(&needle, &text, "invalid", &needle, &mut failures);
            refused(&needle, &text, "invalid", reason, &mut failures);
        }
        if !name.contains('=') {
            let text = format!("[graphite]\ngroup-namespace = g\n[backend-groups]\n{name} = x\n");
            let needle = format!("[backend-groups] {name} = 'x': the group name ");
            refused(&needle, &text, "invalid", &needle, &mut failures);
            refused(&needle, &text, "invalid", reason, &mut failures);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The longest name and every allowed character still pass.
    let longest = "a".repeat(255);
    let loaded = ok(&format!(
        "[graphite]\nnamespace = Ab-0_9.{longest}\ngroup-namespace = g-1\n\
         [backend-groups]\nweb_1-x = ^web\n\
         [kafka]\nbrokers = a:1\ncluster = eu-west_1\nlb-name = {longest}\n\
         [central]\ncluster-namespace = dc-1.clusters_2\n"
    ));
    let kafka = loaded.config.kafka.as_ref().expect("[kafka]");
    assert_eq!(kafka.lb_name.as_deref(), Some(longest.as_str()));
    assert_eq!(kafka.cluster, "eu-west_1");
}

/// Issue 24 item 8: `lb-name` defaults to the host name as the Graphite
/// prefix writes it (dots as `_` with `fqdn`, else the short name), which
/// the name rule accepts for a host name of letters, digits and `-`, this
/// host's included; a host name central would refuse stops the edge at
/// start, naming the option that fixes it.
#[test]
fn the_default_lb_name_is_the_host_name_and_follows_the_rule_too() {
    let loaded = ok("[kafka]\nbrokers = a:1\nsnapshots-topic = snaps\n");
    let config = loaded.config;
    let kafka = config.kafka.as_ref().expect("[kafka]");
    let this_host = gethostname::gethostname().to_string_lossy().into_owned();
    for (hostname, fqdn, want) in [
        ("lb-01.example.com", true, "lb-01_example_com"),
        ("lb-01.example.com", false, "lb-01"),
        ("LB7", true, "LB7"),
        (this_host.as_str(), true, ""),
        (this_host.as_str(), false, ""),
    ] {
        let mut graphite = config.graphite.clone();
        graphite.fqdn = fqdn;
        let host = haproxystats::engine::prefix_host(&graphite, hostname);
        if !want.is_empty() {
            assert_eq!(host, want);
        }
        assert_eq!(kafka.lb_name_or(&host), host);
        if let Err(error) = kafka.check_lb_name(&host) {
            panic!("{hostname} (fqdn = {fqdn}): {error}");
        }
    }
    let refused = kafka
        .check_lb_name("lb;1")
        .map_or_else(|e| e.to_string(), |()| "accepted".into());
    assert_eq!(
        refused,
        "invalid configuration: [kafka] lb-name = '': not set, and the host name 'lb;1' of \
         the Graphite prefix must not hold ';' (carbon would store a tagged series): set lb-name"
    );
    // A set lb-name is the name, whatever the host is called.
    let named = ok("[kafka]\nbrokers = a:1\nsnapshots-topic = snaps\nlb-name = lb-7\n");
    let named = named.config.kafka.expect("[kafka]");
    assert_eq!(named.lb_name_or("lb;1"), "lb-7");
    assert!(named.check_lb_name("lb;1").is_ok());
}
