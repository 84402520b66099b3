package esa.services.elasticsearch.launcher;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginsLoader;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Starts one real Elasticsearch node for the esa-enricher lab.
 *
 * <p>The node is the stock {@code org.elasticsearch.node.Node} from Elastic's server jar, built through its public
 * constructor {@code Node(Environment, PluginsLoader)}. Modules are loaded by Elasticsearch's own
 * {@code PluginsLoader} from {@code <home>/modules/<name>/} directories (jars + plugin-descriptor.properties),
 * exactly as a distribution does; the server and its libraries sit on the module path (see es.sh).
 *
 * <p>What this launcher does not do, compared with the distribution's {@code org.elasticsearch.bootstrap.Elasticsearch}:
 * no server CLI / keystore, no entitlement agent (sandboxing of plugins), no bootstrap checks and no native
 * (JNA/FFI) memory locking or seccomp. Fine for a loopback lab node; not a production setup.
 *
 * <p>System properties: {@code es.path.home} (distribution directory: lib/, modules/, plugins/),
 * {@code es.path.conf} (directory holding elasticsearch.yml and log4j2.properties).
 */
public final class EsLauncher {

    private EsLauncher() {}

    public static void main(String[] args) {
        try {
            run();
        } catch (Throwable t) {
            // Elasticsearch starts non-daemon threads early: exit explicitly so a failed start-up ends the JVM
            // (the shutdown hook, when registered, still closes the node).
            System.err.println("esa-es-launcher: start-up failed: " + t);
            t.printStackTrace();
            System.exit(1);
        }
    }

    private static void run() throws Exception {
        Path home = requiredDir("es.path.home");
        Path conf = requiredDir("es.path.conf");

        // As the distribution's bootstrap does first: route ES logging to log4j (until configure() below,
        // log4j's default configuration applies).
        LogConfigurator.registerErrorListener();
        LogConfigurator.configureESLogging();

        Settings initial = Settings.builder().put("path.home", home.toString()).build();
        // Reads <conf>/elasticsearch.yml, resolves ${...} placeholders, fills path.* defaults.
        Environment env = InternalSettingsPreparer.prepareEnvironment(initial, Map.of(), conf, () -> "esa-lab-node");

        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.setClusterName(env.settings().get("cluster.name", "elasticsearch"));
        LogConfigurator.configure(env, true);

        PluginsLoader pluginsLoader = PluginsLoader.createPluginsLoader(
            PluginsLoader.loadModulesBundles(env.modulesDir(), false),
            PluginsLoader.loadPluginsBundles(env.pluginsDir(), false),
            Map.of()
        );

        Node node = new Node(env, pluginsLoader);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.prepareForClose();
                node.close();
                if (node.awaitClose(30, TimeUnit.SECONDS) == false) {
                    System.err.println("esa-es-launcher: node did not close within 30s");
                }
            } catch (Exception e) {
                System.err.println("esa-es-launcher: error while closing the node: " + e);
            } finally {
                stopped.countDown();
            }
        }, "esa-es-shutdown"));

        node.start();
        System.out.println("esa-es-launcher: node started (home=" + home + ")");
        stopped.await(); // keep a non-daemon thread alive until SIGTERM/SIGINT
    }

    private static Path requiredDir(String property) {
        String value = System.getProperty(property);
        if (value == null || value.isBlank()) {
            throw new IllegalArgumentException("system property [" + property + "] is required");
        }
        Path path = Path.of(value).toAbsolutePath().normalize();
        if (Files.isDirectory(path) == false) {
            throw new IllegalArgumentException("[" + property + "] is not a directory: " + path);
        }
        return path;
    }
}
