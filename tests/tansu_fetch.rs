//! The broker the tests run against, tansu 0.6.0, answers a fetch from an
//! offset inside a record batch with the batches *after* that batch: the
//! rest of the batch is never read (measured: three batches of three
//! records, offsets 0–8; a consumer assigned at offset 1 reads 3–8, at 4
//! reads 6–8, at 7 reads nothing). Kafka answers with the whole batch and
//! the client skips the records before its offset.
//!
//! librdkafka fetches from inside a batch whenever a partition is resumed
//! after a pause (from the application's position) or assigned at a
//! committed offset that is not a batch boundary, which central does all
//! the time: on tansu a raw snapshot's second part, sent in one batch with
//! the first, was lost that way. So every haproxystats configuration of
//! the tests sends one record per batch
//! ([`support::kafka::ONE_RECORD_PER_BATCH`], `Broker::producer_config`);
//! this test checks that, so configured, a consumer starting at any offset
//! reads every record from there.

mod support;

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use support::kafka::Broker;

const ROUNDS: i64 = 3;
const PER_ROUND: i64 = 3;

#[test]
fn with_one_record_per_batch_a_consumer_starting_at_any_offset_reads_every_record_from_there() {
    let broker = Broker::start();
    broker.create_topic("t", 1);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let producer: FutureProducer = broker
            .producer_config()
            .set("enable.idempotence", "true")
            // Long enough for each round's records to share a batch
            // without the option.
            .set("linger.ms", "50")
            .create()
            .expect("producer");
        for round in 0..ROUNDS {
            // Enqueued together, confirmed after: as an edge sends a
            // snapshot's parts.
            let payloads: Vec<String> = (0..PER_ROUND).map(|i| format!("{round}-{i}")).collect();
            let deliveries: Vec<_> = payloads
                .iter()
                .map(|payload| {
                    producer
                        .send_result(FutureRecord::to("t").key("k").payload(payload))
                        .unwrap_or_else(|(e, _)| panic!("enqueue: {e}"))
                })
                .collect();
            for delivery in deliveries {
                delivery
                    .await
                    .expect("delivery answered")
                    .unwrap_or_else(|(e, _)| panic!("delivery: {e}"));
            }
        }
    });
    let total = ROUNDS * PER_ROUND;
    for start in 0..total {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.brokers())
            .set("group.id", format!("reader-{start}"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset("t", 0, Offset::Offset(start))
            .expect("partition");
        consumer.assign(&assignment).expect("assign");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < usize::try_from(total - start).expect("count")
            && Instant::now() < deadline
        {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                got.push(message.expect("message").offset());
            }
        }
        assert_eq!(
            got,
            (start..total).collect::<Vec<_>>(),
            "from offset {start}"
        );
    }
}
