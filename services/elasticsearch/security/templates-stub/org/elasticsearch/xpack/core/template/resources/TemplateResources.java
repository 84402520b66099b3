package org.elasticsearch.xpack.core.template.resources;

import java.io.IOException;

/** Same API as Elastic's class; no templates are bundled, so every load fails loudly (never a silent default). */
public final class TemplateResources {

    private TemplateResources() {}

    /** Always throws: the stand-in module bundles no template resources. */
    public static String load(String name) throws IOException {
        throw new IOException("Template [" + name + "] not found: esa-enricher's x-pack-template-resources stand-in bundles none");
    }
}
