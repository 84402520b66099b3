"""Analyst assets built from `pipelines/` and the field list (`enricher/core/fields.py`): the mapping, the Kibana
saved objects bundle, the Sigma rule conversions, the Splunk add-on.

`esa-enricher assets elasticsearch|kibana|sigma|splunk [--check]` (enricher/cli/assets.py) rebuilds or checks them;
`kibana_import.import_bundle` gives `esa-enricher setup --kibana URL` (enricher/cli/setup.py).
"""
