"""Every field of the session documents, defined once: name, type, description, and what the assets need of it.

A rule table. `make assets` generates from it the Elasticsearch mapping (`pipelines/elasticsearch/
esa-sessions-mappings.json`, `enricher/assets/es_mapping.py`), the Kibana data view's field formats and
descriptions (`enricher/assets/kibana.py`), the Sigma pipeline's field map (`pipelines/sigma/pipeline.yml`,
`enricher/assets/sigma.py`), the Splunk add-on's CIM aliases (`enricher/assets/splunk.py`) and `docs/fields.md`;
tests fail when one of them is stale, and when a document carries a field that is not here. The document builder
(`documents.py`) writes nested dicts and does not read this table: nothing here is on the per-line path.

Where a field comes from: a name under `esa.` is the appliance's data as the enricher stores it; `abort_reason`
and `abort_layer` are the enricher's classification contract (docs/abort-taxonomy.md); every other name is ECS
(the release in `ecs.ECS_VERSION`, choices in docs/ecs.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

# Types: each is one Elasticsearch mapping (MAPPINGS below). Strings are `keyword` (exact values for terms,
# aggregations and rules; a value over 1024 characters is kept in _source, not indexed, never a rejected document).
KEYWORD = "keyword"
KEYWORD_TEXT = "keyword+text"  # a keyword with a `.text` multi-field for word search (as ECS maps email.subject)
STORED = "stored"  # kept in _source only: not searchable, no doc values (raw lines)
LONG = "long"
FLOAT = "float"
LENIENT_FLOAT = "float!"  # a number in loosely matched text: a value that is no number is ignored, not refused
DATE = "date"
IP = "ip"  # from loosely matched log text: a value that is no address is ignored (kept in _source, in _ignored)
BOOLEAN = "boolean"
OBJECT = "object"  # an object (listed when it is an array of objects: its fields are listed on their own)

_KEYWORD = {"type": "keyword", "ignore_above": 1024}
MAPPINGS: MappingProxyType[str, dict[str, Any]] = MappingProxyType(
    {
        KEYWORD: _KEYWORD,
        KEYWORD_TEXT: {**_KEYWORD, "fields": {"text": {"type": "text"}}},
        STORED: {"type": "keyword", "index": False, "doc_values": False},
        LONG: {"type": "long"},
        FLOAT: {"type": "float"},
        LENIENT_FLOAT: {"type": "float", "ignore_malformed": True},
        DATE: {"type": "date"},
        IP: {"type": "ip", "ignore_malformed": True},
        BOOLEAN: {"type": "boolean"},
    }
)

# Kibana field formats (the data view's fieldFormatMap entries).
NANOSECONDS = {"id": "duration", "params": {"inputFormat": "nanoseconds", "outputFormat": "humanizePrecise"}}
SECONDS = {"id": "duration", "params": {"inputFormat": "seconds", "outputFormat": "humanizePrecise"}}
BYTES = {"id": "bytes"}


@dataclass(frozen=True, slots=True)
class Field:
    """One document field (a dotted path; arrays of objects are paths through the array)."""

    name: str
    type: str
    description: str
    array: bool = False  # the value is a JSON array (of values, or of objects for an OBJECT)
    sigma: str | None = None  # its name in the Sigma rules (pipelines/sigma/rules)
    cim: str | None = None  # the CIM Email field the Splunk add-on makes of it
    kibana: dict[str, Any] | None = None  # Kibana field format

    @property
    def origin(self) -> str:
        """`esa` (the appliance's data), `enricher` (the classification contract) or `ecs`."""
        if self.name.startswith("esa."):
            return "esa"
        return "enricher" if self.name in ("abort_reason", "abort_layer") else "ecs"


_F = Field

TABLE: tuple[Field, ...] = (
    # --- the classification contract ---
    _F("abort_reason", KEYWORD, "Why the session ended as it did (a slug of docs/abort-taxonomy.md); absent when "
       "it ended normally.", sigma="abort_reason", cim="signature"),
    _F("abort_layer", KEYWORD, "Where it ended: transport, application, timeout, policy, resource, tls, delivery, internal "
       "or unknown.",
       sigma="abort_layer", cim="signature_extra"),
    # --- ECS ---
    _F("@timestamp", DATE, "Start of the session: its first line (a message: its connection's, when earlier)."),
    _F("ecs.version", KEYWORD, "The ECS release the document follows."),
    _F("event.id", KEYWORD, "Deterministic document id: appliance, MID or ICID, first-seen time (the _id)."),
    _F("event.kind", KEYWORD, "`event` for sessions, `pipeline_error` for lines that could not be typed."),
    _F("event.category", KEYWORD, "`email` (and `network` for a connection).", array=True),
    _F("event.type", KEYWORD, "`info` for a message, `connection` for a connection.", array=True),
    _F("event.dataset", KEYWORD, "`cisco_esa.session` (`cisco_esa.unparsed` for error documents)."),
    _F("event.module", KEYWORD, "`esa_enricher`."),
    _F("event.start", DATE, "Same as @timestamp."),
    _F("event.end", DATE, "Last line of the session (or of its connection, when later)."),
    _F("event.duration", LONG, "event.end − event.start, in nanoseconds.", kibana=NANOSECONDS),
    _F("event.outcome", KEYWORD, "success, failure or unknown, from the classification.", sigma="outcome"),
    _F("event.action", KEYWORD, "`message-<disposition>` or `connection-<disposition>`."),
    _F("event.ingested", DATE, "When the Elasticsearch sink sent the document (not in replay's NDJSON)."),
    _F("event.original", STORED, "Error documents: the line that could not be typed."),
    _F("error.type", KEYWORD, "Error documents: what went wrong with the line."),
    _F("error.code", KEYWORD, "Error documents: a stable code of the error."),
    _F("observer.hostname", KEYWORD, "The appliance that logged the session.", sigma="appliance", cim="dvc"),
    _F("observer.vendor", KEYWORD, "`Cisco`."),
    _F("observer.product", KEYWORD, "`Secure Email Gateway`."),
    _F("observer.type", KEYWORD, "`email-gateway`."),
    _F("observer.serial_number", KEYWORD, "The appliance's serial number, when its log says it."),
    _F("observer.version", KEYWORD, "The appliance's AsyncOS version, when its log says it."),
    _F("email.local_id", KEYWORD, "The MID: the id the appliance gave the message.", cim="internal_message_id"),
    _F("email.message_id", KEYWORD, "The Message-ID header.", cim="message_id"),
    _F("email.subject", KEYWORD_TEXT, "The Subject header (`email.subject.text` for word search).", cim="subject"),
    _F("email.from.address", KEYWORD, "The envelope sender (absent for the null sender).", array=True),
    _F("email.to.address", KEYWORD, "The envelope recipients.", array=True, cim="recipient"),
    _F("email.direction", KEYWORD, "`inbound` or `outbound`: the matched policy table, else the connection's mail "
       "flow policy."),
    _F("email.attachments", OBJECT, "One per attachment or hashed file of the message.", array=True),
    _F("email.attachments.file.name", KEYWORD, "Attachment file name.", cim="file_name"),
    _F("email.attachments.file.hash.sha256", KEYWORD, "SHA-256 from the file analysis and AMP lines.",
       cim="file_hash"),
    _F("source.ip", IP, "The sending client's address (the inbound connection).", sigma="src_ip", cim="src"),
    _F("source.domain", KEYWORD, "The client's reverse DNS name, only when the appliance verified it."),
    _F("destination.ip", IP, "The address of the last delivery attempt (highest DCID).", cim="dest"),
    _F("destination.port", LONG, "The port of the last delivery attempt."),
    _F("network.protocol", KEYWORD, "`smtp`.", cim="protocol"),
    _F("tls.established", BOOLEAN, "Whether TLS was negotiated on the inbound connection."),
    _F("tls.version", KEYWORD, "Inbound TLS version (`1.2`)."),
    _F("tls.version_protocol", KEYWORD, "Inbound TLS protocol (`tls`, `ssl`)."),
    _F("tls.cipher", KEYWORD, "Inbound cipher, as the appliance names it (OpenSSL style)."),
    _F("user.name", KEYWORD, "The SMTP AUTH user of the connection, successful or not.", cim="user"),
    _F("related.ip", IP, "source.ip and every delivery's address.", array=True),
    _F("related.hosts", KEYWORD, "The appliance and the verified source.domain.", array=True),
    _F("related.user", KEYWORD, "user.name.", array=True),
    _F("related.hash", KEYWORD, "Every SHA-256 in email.attachments.", array=True),
    # --- the session ---
    _F("esa.session.kind", KEYWORD, "`message` (one MID) or `connection` (one ICID without messages of its own).",
       sigma="session_kind"),
    _F("esa.session.state", KEYWORD, "complete, partial (written without its last line), expired, evicted or late."),
    _F("esa.session.lines", LONG, "Lines of the session (a message: with its connection's)."),
    _F("esa.session.unrecognized_lines", LONG, "Lines of the session no rule knew."),
    _F("esa.session.writes", LONG, "How many times the session was written (more than once: completed later)."),
    _F("esa.disposition", KEYWORD, "What became of the mail (delivered, bounced, aborted, …), from the "
       "classification.", cim="filter_action"),
    _F("esa.raw", STORED, "Every raw line of the session, in order.", array=True),
    _F("esa.mid", LONG, "The MID."),
    _F("esa.icid", LONG, "The ICID of the inbound connection."),
    # --- why it ended (the classification's evidence) ---
    _F("esa.abort.evidence.rule", KEYWORD, "The rule that decided the verdict."),
    _F("esa.abort.evidence.abort_line", KEYWORD, "The text of the `Message aborted` line."),
    _F("esa.abort.evidence.agent", KEYWORD, "The agent the abort line names."),
    _F("esa.abort.evidence.bounces", LONG, "How many bounce lines the message has."),
    _F("esa.abort.evidence.by", KEYWORD, "Who rejected the recipient (LDAPACCEPT, RAT, Receiving Control, …)."),
    _F("esa.abort.evidence.closed_by", KEYWORD, "What closed the session (a close line, an idle timeout, …)."),
    _F("esa.abort.evidence.code", KEYWORD, "The SMTP code of the bounce or delay."),
    _F("esa.abort.evidence.connection_rule", KEYWORD, "The rule that classified the connection, for a message "
       "that inherits its verdict."),
    _F("esa.abort.evidence.connection_start_seen", BOOLEAN, "Whether the connection's `New SMTP ICID` line was seen."),
    _F("esa.abort.evidence.dcid", LONG, "The delivery connection the verdict is about."),
    _F("esa.abort.evidence.delays", LONG, "How many delay lines the message has."),
    _F("esa.abort.evidence.detail", KEYWORD, "The detail of the deciding line."),
    _F("esa.abort.evidence.dhap_limit", LONG, "The directory harvest limit the connection reached."),
    _F("esa.abort.evidence.disconnected", KEYWORD, "The reason of the connection's disconnect line."),
    _F("esa.abort.evidence.elapsed_from", KEYWORD, "What the elapsed time is counted from."),
    _F("esa.abort.evidence.elapsed_seconds", FLOAT, "Seconds from that point to the abort.", kibana=SECONDS),
    _F("esa.abort.evidence.finished_line", KEYWORD, "The status of the `Message finished` line."),
    _F("esa.abort.evidence.icid", LONG, "The inbound connection the verdict is about."),
    _F("esa.abort.evidence.icid_close", BOOLEAN, "Whether the connection's close line was seen."),
    _F("esa.abort.evidence.icid_lost", BOOLEAN, "Whether the connection was lost."),
    _F("esa.abort.evidence.icid_lost_offset_seconds", FLOAT, "Seconds between the message's end and the lost "
       "connection.", kibana=SECONDS),
    _F("esa.abort.evidence.idle_timeout_seconds", FLOAT, "The idle timeout that closed the session.",
       kibana=SECONDS),
    _F("esa.abort.evidence.inbound_timeout_seconds", FLOAT, "The appliance's inbound timeout the verdict assumed.",
       kibana=SECONDS),
    _F("esa.abort.evidence.inherited_from", KEYWORD, "`connection` when the message took its connection's verdict."),
    _F("esa.abort.evidence.last_line_kind", KEYWORD, "The kind of the session's last line."),
    _F("esa.abort.evidence.last_line_time", DATE, "The time of the session's last line."),
    _F("esa.abort.evidence.lost_window_seconds", FLOAT, "How close to the lost connection the message must end.",
       kibana=SECONDS),
    _F("esa.abort.evidence.mail_from_null", BOOLEAN, "Whether the envelope sender was the null sender."),
    _F("esa.abort.evidence.max_open_sessions", LONG, "The open-session limit that evicted the session."),
    _F("esa.abort.evidence.pending_till", KEYWORD, "Until when the recipient was pending."),
    _F("esa.abort.evidence.quarantine", KEYWORD, "The quarantine the message was in."),
    _F("esa.abort.evidence.reason", KEYWORD, "The reason of the deciding bounce, delay or reject."),
    _F("esa.abort.evidence.receiving_failed", KEYWORD, "The reason of the connection's receiving-failed line."),
    _F("esa.abort.evidence.recipients", LONG, "Recipients of the message."),
    _F("esa.abort.evidence.recipients_rejected", LONG, "Recipients rejected."),
    _F("esa.abort.evidence.rid", LONG, "The recipient ids the deciding line names.", array=True),
    _F("esa.abort.evidence.sbrs", KEYWORD, "The sender's SenderBase reputation score."),
    _F("esa.abort.evidence.seconds_before_close", FLOAT, "Seconds between the last line and the close.",
       kibana=SECONDS),
    _F("esa.abort.evidence.sender_group", KEYWORD, "The sender group the connection matched."),
    _F("esa.abort.evidence.source_host", KEYWORD, "The client's host name the deciding line names."),
    _F("esa.abort.evidence.source_ip", IP, "The client's address the deciding line names."),
    _F("esa.abort.evidence.status", KEYWORD, "The status of the deciding line (quarantine, delivery, TLS)."),
    _F("esa.abort.evidence.terminal", BOOLEAN, "Whether the deciding line ends the session by itself."),
    _F("esa.abort.evidence.tolerance_seconds", FLOAT, "The slack allowed around the inbound timeout.",
       kibana=SECONDS),
    _F("esa.abort.evidence.user", KEYWORD, "The SMTP AUTH user of a failed authentication."),
    # --- the inbound connection ---
    _F("esa.connection.icid", LONG, "The ICID."),
    _F("esa.connection.start", DATE, "The `New SMTP ICID` line."),
    _F("esa.connection.interface", KEYWORD, "The listener's interface."),
    _F("esa.connection.interface_ip", IP, "The listener's address."),
    _F("esa.connection.reverse_dns", KEYWORD, "The client's reverse DNS name, verified or not."),
    _F("esa.connection.reverse_dns_verified", BOOLEAN, "Whether the appliance verified that name (`verified yes`)."),
    _F("esa.connection.sender_group", KEYWORD, "The HAT sender group the client matched.", sigma="sender_group"),
    _F("esa.connection.hat_action", KEYWORD, "The mail flow policy's action (ACCEPT, RELAY, REJECT, TCPREFUSE, …).",
       sigma="hat_action"),
    _F("esa.connection.hat_match", KEYWORD, "What the sender group matched on."),
    _F("esa.connection.sbrs", FLOAT, "The SenderBase reputation score, as a number."),
    _F("esa.connection.sbrs_raw", KEYWORD, "The score as logged (`none` included)."),
    _F("esa.connection.country", KEYWORD, "The client's country, as the appliance logs it."),
    _F("esa.connection.tls.status", KEYWORD, "Inbound TLS: success or failed."),
    _F("esa.connection.tls.protocol", KEYWORD, "Inbound TLS protocol as logged (`TLSv1.2`)."),
    _F("esa.connection.tls.cipher", KEYWORD, "Inbound cipher."),
    _F("esa.connection.tls.detail", KEYWORD, "Why inbound TLS failed."),
    _F("esa.connection.smtp_auth.result", KEYWORD, "SMTP AUTH result."),
    _F("esa.connection.smtp_auth.user", KEYWORD, "SMTP AUTH user."),
    _F("esa.connection.smtp_auth.mechanism", KEYWORD, "SMTP AUTH mechanism."),
    _F("esa.connection.smtp_auth.profile", KEYWORD, "SMTP AUTH profile."),
    _F("esa.connection.lost", BOOLEAN, "The appliance logged the connection as lost."),
    _F("esa.connection.lost_time", DATE, "When it was lost."),
    _F("esa.connection.closed_time", DATE, "The close line."),
    _F("esa.connection.receiving_failed", KEYWORD, "Why receiving failed."),
    _F("esa.connection.disconnected", KEYWORD, "Why the client was disconnected."),
    _F("esa.connection.delayed_hat_reject", KEYWORD, "The delayed HAT REJECT line's detail."),
    _F("esa.connection.dhap_drop.source_ip", IP, "Directory harvest drop: the client's address."),
    _F("esa.connection.dhap_drop.source_host", KEYWORD, "Directory harvest drop: the client's host name."),
    _F("esa.connection.dhap_drop.dhap_limit", LONG, "Directory harvest drop: the limit reached."),
    _F("esa.connection.dhap_drop.sender_group", KEYWORD, "Directory harvest drop: the sender group."),
    _F("esa.connection.tls_required_not_initiated", KEYWORD, "TLS was required and the client did not start it."),
    _F("esa.connection.connection_killed", BOOLEAN, "The connection was killed."),
    _F("esa.connection.rejected_recipients", OBJECT, "Recipients refused on the connection, outside any message.",
       array=True),
    _F("esa.connection.rejected_recipients.address", KEYWORD, "The refused address."),
    _F("esa.connection.rejected_recipients.by", KEYWORD, "Who refused it."),
    _F("esa.connection.rejected_recipients.detail", KEYWORD, "The refusal's detail."),
    _F("esa.connection.rejected_recipients.reason", KEYWORD, "The abort_reason slug of the refusal."),
    _F("esa.connection.message_count", LONG, "Messages received on the connection."),
    # --- the message ---
    _F("esa.envelope.from", KEYWORD, "Envelope sender (MAIL FROM); empty for the null sender.", sigma="sender",
       cim="src_user"),
    _F("esa.envelope.from_extra", KEYWORD, "What followed the sender on its line (ESMTP parameters)."),
    _F("esa.envelope.null_sender", BOOLEAN, "The null sender (`From: <>`): a bounce or notification.",
       sigma="null_sender"),
    _F("esa.envelope.recipients", OBJECT, "Recipients (RCPT TO), with their ids.", array=True),
    _F("esa.envelope.recipients.rid", LONG, "The recipient id (RID)."),
    _F("esa.envelope.recipients.address", KEYWORD, "The recipient address.", sigma="recipient"),
    _F("esa.envelope.rejected_recipients", OBJECT, "Recipients the appliance refused.", array=True),
    _F("esa.envelope.rejected_recipients.address", KEYWORD, "The refused address.", sigma="rejected_recipient"),
    _F("esa.envelope.rejected_recipients.by", KEYWORD, "Who refused it (LDAPACCEPT, RAT, Receiving Control, …)."),
    _F("esa.envelope.rejected_recipients.detail", KEYWORD, "The refusal's detail."),
    _F("esa.envelope.rejected_recipients.reason", KEYWORD, "The abort_reason slug of the refusal."),
    _F("esa.size", LONG, "Message size in bytes.", cim="size", kibana=BYTES),
    _F("esa.ready_time", DATE, "The `ready` line (the message fully received)."),
    _F("esa.queued", BOOLEAN, "The message was queued for delivery."),
    _F("esa.finished", KEYWORD, "The status of the `Message finished` line."),
    _F("esa.generated_by_appliance", BOOLEAN, "The appliance made the message (a bounce, a notification)."),
    _F("esa.policies", OBJECT, "Mail policies the message matched.", array=True),
    _F("esa.policies.direction", KEYWORD, "The policy table (inbound, outbound)."),
    _F("esa.policies.policy", KEYWORD, "The policy's name."),
    _F("esa.verdicts.antispam.engine", KEYWORD, "Anti-spam engine (CASE, IMS, …)."),
    _F("esa.verdicts.antispam.verdict", KEYWORD, "Anti-spam verdict."),
    _F("esa.verdicts.antispam.interim", BOOLEAN, "Only an interim verdict was logged."),
    _F("esa.verdicts.antivirus.engine", KEYWORD, "Anti-virus engine."),
    _F("esa.verdicts.antivirus.verdict", KEYWORD, "Anti-virus verdict."),
    _F("esa.verdicts.antivirus.interim", BOOLEAN, "Only an interim verdict was logged."),
    _F("esa.verdicts.antivirus.detail", KEYWORD, "The virus named."),
    _F("esa.verdicts.amp.verdict", KEYWORD, "Advanced Malware Protection verdict."),
    _F("esa.verdicts.graymail.engine", KEYWORD, "Graymail engine."),
    _F("esa.verdicts.graymail.verdict", KEYWORD, "Graymail verdict."),
    _F("esa.verdicts.graymail.interim", BOOLEAN, "Only an interim verdict was logged."),
    _F("esa.verdicts.outbreak.verdict", KEYWORD, "Outbreak filter verdict."),
    _F("esa.verdicts.outbreak.detail", KEYWORD, "Outbreak filter detail."),
    _F("esa.verdicts.dlp.verdict", KEYWORD, "Data loss prevention verdict."),
    _F("esa.verdicts.dlp.policy", KEYWORD, "DLP policy."),
    _F("esa.verdicts.dlp.severity", KEYWORD, "DLP severity."),
    _F("esa.verdicts.dlp.risk", LONG, "DLP risk factor."),
    _F("esa.verdicts.other_engines", OBJECT, "Verdicts of the other engines.", array=True),
    _F("esa.verdicts.other_engines.engine", KEYWORD, "The engine."),
    _F("esa.verdicts.other_engines.verdict", KEYWORD, "Its verdict."),
    _F("esa.auth.spf", OBJECT, "SPF checks.", array=True),
    _F("esa.auth.spf.identity", KEYWORD, "SPF identity checked (helo, mailfrom, pra)."),
    _F("esa.auth.spf.address", KEYWORD, "The address checked."),
    _F("esa.auth.spf.result", KEYWORD, "SPF result."),
    _F("esa.auth.spf.detail", KEYWORD, "SPF detail."),
    _F("esa.auth.dkim", KEYWORD, "DKIM verification results.", array=True),
    _F("esa.auth.domainkeys", KEYWORD, "DomainKeys verification results.", array=True),
    _F("esa.auth.dmarc", KEYWORD, "DMARC verification lines.", array=True),
    _F("esa.sdr", KEYWORD, "Sender Domain Reputation lines.", array=True),
    _F("esa.urls", OBJECT, "URL reputation answers.", array=True),
    _F("esa.urls.url", KEYWORD, "The URL."),
    _F("esa.urls.score", LENIENT_FLOAT, "Its reputation score."),
    _F("esa.urls.condition", KEYWORD, "The condition it matched."),
    _F("esa.files", OBJECT, "Files queued for file analysis.", array=True),
    _F("esa.files.sha256", KEYWORD, "SHA-256 as logged."),
    _F("esa.files.filename", KEYWORD, "File name."),
    _F("esa.amp_files", OBJECT, "AMP file reputation queries and answers.", array=True),
    _F("esa.amp_files.filename", KEYWORD, "File name."),
    _F("esa.amp_files.disposition", KEYWORD, "AMP disposition."),
    _F("esa.amp_files.malware", KEYWORD, "Malware named."),
    _F("esa.amp_files.sha256", KEYWORD, "SHA-256 from the answer."),
    _F("esa.amp_not_uploaded", KEYWORD, "`File not uploaded for analysis` details.", array=True),
    _F("esa.av_results", KEYWORD, "Anti-virus log results.", array=True),
    _F("esa.scan_issues", OBJECT, "Scans that did not complete (too big, engine errors, problems).", array=True),
    _F("esa.scan_issues.engine", KEYWORD, "The engine."),
    _F("esa.scan_issues.size", LONG, "The message size the engine refused.", kibana=BYTES),
    _F("esa.scan_issues.limit", LONG, "The engine's size limit.", kibana=BYTES),
    _F("esa.scan_issues.error", KEYWORD, "The engine's error."),
    _F("esa.scan_issues.problem", KEYWORD, "The problem logged."),
    _F("esa.custom_log", KEYWORD, "Custom log entries of filters.", array=True),
    _F("esa.incoming_relay.name", KEYWORD, "The incoming relay configured."),
    _F("esa.incoming_relay.detail", KEYWORD, "What the relay line says of the original sender."),
    _F("esa.quarantine.quarantine", KEYWORD, "The quarantine's name."),
    _F("esa.quarantine.reason", KEYWORD, "Why the message was quarantined."),
    _F("esa.quarantine.status", KEYWORD, "quarantined, tagged, released or deleted."),
    _F("esa.parent.mid", LONG, "The message this one was made from."),
    _F("esa.parent.relation", KEYWORD, "How (generated, bounce, reinjected)."),
    _F("esa.children", OBJECT, "Messages made from this one.", array=True),
    _F("esa.children.mid", LONG, "The child's MID."),
    _F("esa.children.relation", KEYWORD, "How (split, rewritten)."),
    _F("esa.deliveries", OBJECT, "Delivery attempts, one per DCID, sorted by DCID.", array=True),
    _F("esa.deliveries.dcid", LONG, "The DCID."),
    _F("esa.deliveries.type", KEYWORD, "DCID, or RCID for the appliance's own spam quarantine."),
    _F("esa.deliveries.status", KEYWORD, "delivered, bounced, delayed, possible_delivery, …"),
    _F("esa.deliveries.rids", LONG, "The recipient ids delivered.", array=True),
    _F("esa.deliveries.target", KEYWORD, "The target the delivery line names."),
    _F("esa.deliveries.start_time", DATE, "The delivery's start line."),
    _F("esa.deliveries.end_time", DATE, "Its last line."),
    _F("esa.deliveries.interface", KEYWORD, "The sending interface."),
    _F("esa.deliveries.destination_ip", IP, "The server's address."),
    _F("esa.deliveries.port", LONG, "The server's port."),
    _F("esa.deliveries.tls.status", KEYWORD, "Outbound TLS: success or failed."),
    _F("esa.deliveries.tls.protocol", KEYWORD, "Outbound TLS protocol."),
    _F("esa.deliveries.tls.cipher", KEYWORD, "Outbound cipher."),
    _F("esa.deliveries.tls.detail", KEYWORD, "Why outbound TLS failed."),
    _F("esa.deliveries.connection_error.domain", KEYWORD, "Connection error: the domain."),
    _F("esa.deliveries.connection_error.destination_ip", IP, "Connection error: the address."),
    _F("esa.deliveries.connection_error.detail", KEYWORD, "Connection error: the detail."),
    _F("esa.bounces", OBJECT, "Bounce lines.", array=True),
    _F("esa.bounces.time", DATE, "When."),
    _F("esa.bounces.dcid", LONG, "The delivery connection."),
    _F("esa.bounces.rid", LONG, "The recipient id (a list when one line names several).", array=True),
    _F("esa.bounces.code", KEYWORD, "The SMTP code."),
    _F("esa.bounces.reason", KEYWORD, "The reason."),
    _F("esa.bounces.response", KEYWORD, "The server's response."),
    _F("esa.bounces.from", KEYWORD, "The sender the bounce names."),
    _F("esa.bounces.to", KEYWORD, "The recipient the bounce names."),
    _F("esa.delays", OBJECT, "Delay lines.", array=True),
    _F("esa.delays.time", DATE, "When."),
    _F("esa.delays.dcid", LONG, "The delivery connection."),
    _F("esa.delays.rid", LONG, "The recipient id (a list when one line names several).", array=True),
    _F("esa.delays.code", KEYWORD, "The SMTP code."),
    _F("esa.delays.reason", KEYWORD, "The reason."),
    _F("esa.delays.response", KEYWORD, "The server's response."),
    _F("esa.delays.from", KEYWORD, "The sender the line names."),
    _F("esa.delays.to", KEYWORD, "The recipient the line names."),
    _F("esa.pending", OBJECT, "Recipients pending delivery.", array=True),
    _F("esa.pending.rids", LONG, "The recipient ids.", array=True),
    _F("esa.pending.until", KEYWORD, "Until when."),
    _F("esa.responses", OBJECT, "Servers' responses to deliveries.", array=True),
    _F("esa.responses.rids", LONG, "The recipient ids.", array=True),
    _F("esa.responses.response", KEYWORD, "The response."),
    _F("esa.reroutes", OBJECT, "LDAP reroutes of recipients.", array=True),
    _F("esa.reroutes.rid", LONG, "The recipient id."),
    _F("esa.reroutes.address", KEYWORD, "The address rerouted."),
    _F("esa.reroutes.target", KEYWORD, "Where to."),
    _F("esa.consolidated.event_class", KEYWORD, "Consolidated event log: event class."),
    _F("esa.consolidated.action", KEYWORD, "Consolidated event log: final action."),
    _F("esa.consolidated.final_action_details", KEYWORD, "Consolidated event log: final action details."),
    _F("esa.consolidated.from", KEYWORD, "Consolidated event log: sender."),
    _F("esa.consolidated.to", KEYWORD, "Consolidated event log: recipients."),
    _F("esa.consolidated.source_ip", IP, "Consolidated event log: the client's address."),
    _F("esa.consolidated.observer_ip", IP, "Consolidated event log: the appliance's address."),
    _F("esa.consolidated.mail_flow_policy", KEYWORD, "Consolidated event log: mail flow policy."),
    _F("esa.consolidated.antispam", KEYWORD, "Consolidated event log: anti-spam verdict."),
    _F("esa.consolidated.antivirus", KEYWORD, "Consolidated event log: anti-virus verdict."),
    _F("esa.consolidated.amp", KEYWORD, "Consolidated event log: AMP verdict."),
    _F("esa.consolidated.graymail", KEYWORD, "Consolidated event log: graymail verdict."),
    _F("esa.consolidated.content_filter", KEYWORD, "Consolidated event log: content filter."),
    _F("esa.consolidated.dlp", KEYWORD, "Consolidated event log: DLP verdict."),
    _F("esa.consolidated.serial", KEYWORD, "Consolidated event log: appliance serial number."),
    _F("esa.consolidated.version", KEYWORD, "Consolidated event log: AsyncOS version."),
)

FIELDS: MappingProxyType[str, Field] = MappingProxyType({f.name: f for f in TABLE})


def name(field: str) -> str:
    """`field` itself, once checked against the table: a field name spelled in code that the table defines."""
    if field not in FIELDS:
        raise KeyError(f"{field!r} is not a document field (enricher/core/fields.py)")
    return field


def leaves() -> list[Field]:
    """The fields that hold values (every type but OBJECT), in table order."""
    return [f for f in TABLE if f.type != OBJECT]


def by_sigma() -> dict[str, str]:
    """Sigma field name → document field, in table order."""
    return {f.sigma: f.name for f in TABLE if f.sigma}


def by_cim() -> dict[str, str]:
    """CIM Email field name → document field, in table order."""
    return {f.cim: f.name for f in TABLE if f.cim}


def array_paths() -> frozenset[str]:
    """Paths whose value is a JSON array (of values, or of objects)."""
    return _ARRAYS


_ARRAYS = frozenset(f.name for f in TABLE if f.array)


def splunk_name(field: str) -> str:
    """The name Splunk's JSON extraction gives a field: `{}` after each array on its path
    (`esa.deliveries{}.rids{}`)."""
    parts = field.split(".")
    return ".".join(p + "{}" if ".".join(parts[: i + 1]) in _ARRAYS else p for i, p in enumerate(parts))
