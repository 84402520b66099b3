/**
 * Stand-in for x-pack-template-resources (module org.elasticsearch.xcore.templates), which x-pack-core requires and
 * Elastic does not publish on Maven Central. It holds only the JSON templates of x-pack features this node does not
 * load (ILM, monitoring, ...); security builds its own index mappings in code.
 */
module org.elasticsearch.xcore.templates {
    exports org.elasticsearch.xpack.core.template.resources;
}
