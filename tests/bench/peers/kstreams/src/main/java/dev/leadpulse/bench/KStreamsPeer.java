package dev.leadpulse.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams peer of leadpulse's pipeline benchmark: per-source leads and customers.
 *
 * <pre>java -cp target/kstreams-peer.jar:target/libs/* dev.leadpulse.bench.KStreamsPeer BOOTSTRAP APP_ID STATE_DIR</pre>
 *
 * <p>Reads leadpulse.leads and leadpulse.deals from the beginning. Stage one keeps each lead's
 * state (the source of its first lead.created, won or not) in a RocksDB store keyed by lead_id
 * (both topics are keyed by lead_id and co-partitioned, so a lead's records meet in one task)
 * and emits (source, "lead") when a lead first counts and (source, "customer") when it first
 * has both a source and a deal.won. Stage two, after a repartition by source, keeps the
 * per-source counts in a second RocksDB store. Records that are not a JSON object with a
 * string type and lead_id (and, for lead.created, source) are skipped.
 *
 * <p>Stdout is the benchmark's protocol (tests/bench/peers/progress.py): every 10 ms, when
 * something moved, {@code P <microseconds> <records read> <deltas emitted> <deltas counted>};
 * after SIGTERM and a clean close, {@code C <JSON: source -> [leads, customers]>}.
 */
public final class KStreamsPeer {
    static final List<String> TOPICS = List.of("leadpulse.leads", "leadpulse.deals");
    static final String LEADS_STORE = "lead-state";
    static final String COUNTS_STORE = "source-counts";
    static final byte CREATED = 1;
    static final byte WON = 2;
    static final long REPORT_EVERY_MS = 10;
    static final ObjectMapper JSON = new ObjectMapper();

    // Written only by the one stream thread; volatile so the reporter thread sees them.
    static volatile long read;
    static volatile long emitted;
    static volatile long counted;
    // The last value stage two stored per source; read after close(), which joins the stream thread.
    static final Map<String, long[]> LATEST = new TreeMap<>();

    private KStreamsPeer() {}

    public static void main(String[] args) {
        if (args.length != 3) {
            System.err.println("usage: KStreamsPeer BOOTSTRAP APP_ID STATE_DIR");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[2]);
        // The defaults, spelled out: one stream thread, at-least-once (exactly-once off).
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        KafkaStreams streams = new KafkaStreams(topology(), props);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close();
            report();
            System.out.println("C " + counts());
            System.out.flush();
        }));
        Thread reporter = new Thread(KStreamsPeer::reportEvery, "progress");
        reporter.setDaemon(true);
        reporter.start();
        streams.start();
    }

    static Topology topology() {
        StreamsBuilder builder = new StreamsBuilder();
        builder.addStateStore(Stores.keyValueStoreBuilder(
            Stores.persistentKeyValueStore(LEADS_STORE), Serdes.String(), Serdes.ByteArray()));
        builder.addStateStore(Stores.keyValueStoreBuilder(
            Stores.persistentKeyValueStore(COUNTS_STORE), Serdes.String(), Serdes.ByteArray()));
        builder.stream(TOPICS, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
            .process(LeadState::new, LEADS_STORE)
            .repartition(Repartitioned.with(Serdes.String(), Serdes.String()).withName("by-source"))
            .process(SourceCounts::new, COUNTS_STORE);
        return builder.build();
    }

    /** Stage one: a lead's source and won flag; emits the lead and the customer once each. */
    static final class LeadState implements Processor<byte[], byte[], String, String> {
        private ProcessorContext<String, String> context;
        private KeyValueStore<String, byte[]> leads;

        @Override
        public void init(ProcessorContext<String, String> context) {
            this.context = context;
            this.leads = context.getStateStore(LEADS_STORE);
        }

        @Override
        public void process(Record<byte[], byte[]> record) {
            read++;
            JsonNode fields;
            try {
                fields = JSON.readTree(record.value());
            } catch (IOException | IllegalArgumentException invalid) {
                return;
            }
            String type = text(fields, "type");
            String lead = text(fields, "lead_id");
            if (type == null || lead == null) {
                return;
            }
            boolean created = type.equals("lead.created");
            String source = created ? text(fields, "source") : null;
            if (created ? source == null : !type.equals("deal.won")) {
                return;
            }
            // The state: one flags byte (CREATED, WON), then the source in UTF-8.
            byte[] before = leads.get(lead);
            byte flags = before == null ? 0 : before[0];
            byte after = (byte) (flags | (created ? CREATED : WON));
            if (after == flags) {
                return;
            }
            String kept = (flags & CREATED) != 0
                ? new String(before, 1, before.length - 1, StandardCharsets.UTF_8) : source;
            byte[] name = kept == null ? new byte[0] : kept.getBytes(StandardCharsets.UTF_8);
            byte[] state = Arrays.copyOf(new byte[] {after}, 1 + name.length);
            System.arraycopy(name, 0, state, 1, name.length);
            leads.put(lead, state);
            if (created) {
                forward(kept, "lead", record.timestamp());
            }
            if (after == (CREATED | WON)) {
                forward(kept, "customer", record.timestamp());
            }
        }

        private void forward(String source, String kind, long timestamp) {
            emitted++;
            context.forward(new Record<>(source, kind, timestamp));
        }
    }

    /** Stage two: per-source leads and customers, two longs per source. */
    static final class SourceCounts implements Processor<String, String, Void, Void> {
        private KeyValueStore<String, byte[]> counts;

        @Override
        public void init(ProcessorContext<Void, Void> context) {
            this.counts = context.getStateStore(COUNTS_STORE);
        }

        @Override
        public void process(Record<String, String> record) {
            byte[] stored = counts.get(record.key());
            ByteBuffer pair = stored == null ? ByteBuffer.allocate(16) : ByteBuffer.wrap(stored);
            int slot = record.value().equals("lead") ? 0 : 8;
            pair.putLong(slot, pair.getLong(slot) + 1);
            counts.put(record.key(), pair.array());
            LATEST.put(record.key(), new long[] {pair.getLong(0), pair.getLong(8)});
            counted++;
        }
    }

    static String text(JsonNode fields, String name) {
        JsonNode value = fields == null ? null : fields.get(name);
        return value != null && value.isTextual() ? value.textValue() : null;
    }

    static String counts() {
        try {
            return JSON.writeValueAsString(LATEST);
        } catch (IOException impossible) {
            throw new IllegalStateException(impossible);
        }
    }

    private static long[] last = new long[3];

    static synchronized void report() {
        long[] now = {read, emitted, counted};
        if (!Arrays.equals(now, last)) {
            last = now;
            System.out.println("P " + System.nanoTime() / 1000 + " " + now[0] + " " + now[1] + " " + now[2]);
            System.out.flush();
        }
    }

    static void reportEvery() {
        while (true) {
            report();
            try {
                Thread.sleep(REPORT_EVERY_MS);
            } catch (InterruptedException stop) {
                return;
            }
        }
    }
}
