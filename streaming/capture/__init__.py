"""Capture: Kafka → Parquet landing zone, every offset landed exactly once.

The sink discipline (OpenMeter, Kafka Connect S3 sink): validate, write, make
durable, *then* commit. For each partition's micro-batch:

1. every record is validated against the contract; a bad one becomes a dead
   letter (raw bytes, topic, partition, offset, reason) — never dropped. An
   event dated more than `quality.max_future_seconds` after the batch's
   capture time is one too (`occurred_in_future`), so it never creates a day
   partition. Raw IPs are personal data: a valid click keeps only the salted
   `ip_hash`, and every IP address in a dead letter's raw bytes, key and reason
   is replaced by `ip-masked:<12 hex of the salted hash>` (`streaming.privacy`)
   before the Parquet row is written or the message and its `o2p.reason`
   header are sent to the dead-letter topic; only the source topics hold raw
   IPs, under their retention;
2. good rows (grouped by Asia/Shanghai event date) and dead letters are
   written to `_tmp/` and fsynced; dead letters are also sent to the
   dead-letter topic (at least once, keyed by their source coordinates);
3. the partition's state file is replaced atomically: the batch's
   `next_offset` and the list of (tmp → final) renames. **This is the commit
   point**;
4. the renames happen (final names derive from topic, partition and offsets);
5. the Kafka offset is committed (a hint: on (re)assignment the state file
   wins, pending renames are rolled forward and uncommitted tmp files deleted).

A crash between any two steps therefore leaves every offset landed once.

Ownership: while a process owns a partition it holds an exclusive `flock` on
`_state/<topic>+<partition>.lock` (the kernel drops it when the process dies,
kill -9 included). A new owner takes the lock before it recovers, so a
zombie that missed a rebalance can never write beside it; and a batch is only
landed from the state file's `next_offset` on (records before it are already
landed and are skipped; a jump past it — retention deleted offsets before they
were captured — is logged and recorded in the state file as a gap).

Where each part lives:

- `consumer`           `Capture`: the consumer group, buffers, the flush policy, offset
                       commits (step 5, a failed one retried until the group holds the landed
                       state), lag (from the fetch responses), the run loop (`o2p capture`);
- `sink`               `Sink`: recovery on assignment and landing a batch (steps 1-4);
- `sink_process`       the sink in a child process (validating the next batch while a writer
                       thread commits the previous one), and the messages between the two;
- `stop_signals`       SIGTERM/SIGINT recorded from `o2p`'s first line, before capture exists;
- `partition_locks`    the per-partition `flock` (ownership);
- `dead_letter_topic`  sending dead letters to their topic, at least once;
- `broker_waits`       waiting for the topics to exist, and through broker outages;
- `kafka_rejoin_fix`   a kafka-python 3.0.12 workaround (a rejoin lost by a short poll).

The landing layout (paths, file names, Arrow schemas) is in `o2p.layout`; the salted IP
hash and the masking of dead letters in `streaming.privacy`.
"""
