"""Every Redis key Atelier writes, in one place.

Key schema (``{p}`` is the prefix, ``atelier`` by default)::

    {p}:job:{job_id}                hash   record (JSON, owned by shared.jobs), progress (JSON),
                                           checkpoint (JSON: newest stored checkpoint),
                                           cancel ("1" once a cancel was asked for),
                                           fence (the attempt allowed to write: see
                                           shared.job_indexes)
    {p}:job:{job_id}:logs           list   the job's own log lines, newest last, capped
    {p}:job:{job_id}:events         stream the job's events (shared.events), capped
    {p}:job:{job_id}:metrics:{s}    list   metric history of series s (train, validation):
                                           JSON points, down-sampled (shared.metric_history)
    {p}:job:{job_id}:metrics-meta   hash   "{s}:stride", "{s}:last" of each series
    {p}:owner:{owner}:events        stream one owner's events, capped
    {p}:events                      stream every event, capped; webhook delivery reads it
                                           through a consumer group
    {p}:events:wake                 pubsub "owner job_id" after each event (API processes
                                           listen, then read the streams)
    {p}:running                     zset   running job ids scored by lease expiry (epoch s);
                                           a score in the past means the worker is gone
    {p}:start-deadlines             zset   queued job ids scored by their start_before
    {p}:requeued                    zset   requeued job ids scored by when to send their message;
                                           written in the same MULTI as the requeue, so a
                                           crash cannot lose the retry
    {p}:queued:{job_type}           zset   queued job ids scored by when their message was due
                                           (sent at create, or a requeue's send time); the
                                           reaper re-sends ones whose message was lost
    {p}:fair:{job_type}             zset   owners with claimable jobs, scored by their fair-
                                           queuing tag (shared.scheduling says the rule)
    {p}:fair:{job_type}:{owner}     zset   an owner's claimable jobs, ranked by priority, age
    {p}:fair-tags:{job_type}        hash   owner -> last tag; "~now" -> last start's tag
    {p}:owner-running:{type}:{owner} set   an owner's running jobs (its running-jobs limit)
    {p}:finished                    zset   finished job ids scored by when they finished (the
                                           retention sweep deletes the old ones)
    {p}:owed-wakeups:{job_type}     string messages spent on owners at their running limit,
                                           re-sent when a running slot frees
    {p}:idempotency:{owner}:{key}   string {job_id, fingerprint} of an Idempotency-Key (24 h)
    {p}:draining:{generation}       string set while a worker process generation shuts down
                                           (short TTL; a restarted worker has a new one)
    {p}:owner:{owner}:jobs          zset   job ids of one owner, all scored 0: ids sort by
                                           creation time, so ZREVRANGEBYLEX pages newest first
    {p}:owner:{owner}:tag:{tag}     zset   the owner's job ids carrying tag, scored 0 like the
                                           jobs index, written with the record's tags in one
                                           MULTI (shared.job_labels); GET /v1/jobs?tag= pages it
    {p}:sweep:{sweep_id}            string sweep record (JSON: base job, space, trial job
                                           ids and their values; shared.sweeps)
    {p}:owner:{owner}:sweeps        zset   sweep ids of one owner, scored 0 like jobs
    {p}:sweeps:stopping             set    sweeps with early stopping and live trials
                                           (shared.sweep_stopping)
    {p}:sweeps:stopping-turn        string held (EX) by the reaper checking them now
    {p}:sweep:{sweep_id}:stopped    hash   trial job id -> why the median rule stopped it
    {p}:model:{model_id}            string model record (JSON)
    {p}:model:{model_id}:exports    hash   format -> its export's state (JSON: pending, ready
                                           with the object's key, or failed; shared.exports);
                                           deleted with the model
    {p}:owner:{owner}:models        zset   model ids of one owner, scored 0 like jobs
    {p}:model:{model_id}:users      set    ids of the unfinished jobs that need the model
                                           (generation, or init_model); joined in the job's
                                           create MULTI, left in its terminal one; a
                                           delete WATCHes it (shared.model_users)
    {p}:dataset:{dataset_id}        string uploaded dataset record (JSON)
    {p}:dataset:{dataset_id}:users  set    ids of jobs that read the dataset (delete checks)
    {p}:owner:{owner}:datasets      zset   dataset ids of one owner, scored 0 like jobs
    {p}:apikey:{sha256(key)}        string API key record (JSON: owner, name, created_at,
                                           scopes, expires_at); the key itself is never
                                           stored; expires with the key (EXAT)
    {p}:owner:{owner}:apikeys       hash   key id (first 16 hex of the hash) -> full hash
    {p}:owner:{owner}:apikeys-used  hash   key id -> last use (epoch seconds; written at most
                                           once a minute per API process)
    {p}:owner:{owner}:audit         stream submits, cancels, deletes and key changes, newest
                                           last, capped near 1000 entries (shared.audit)
    {p}:ratelimit:{owner}:{budget}  string GCRA theoretical arrival time (ms since the epoch)
                                           of one rate budget (submits, uploads, reads);
                                           expires once the budget is full again
    {p}:ratelimit:address:{addr}    string the same, for a client address without valid
                                           credentials (api.address_limits)
    {p}:owner:{owner}:objects       hash   object key -> size in bytes of every object stored
                                           under ``owners/{owner}/`` (shared.quotas)
    {p}:owner:{owner}:stored-bytes  string the sum of that hash, kept in the same Lua step
    {p}:owner:{owner}:reservations  hash   job id -> bytes reserved for that unfinished job's
                                           output (its estimate), held from admission until
                                           the job is terminal or deleted (shared.reservations)
    {p}:owner:{owner}:reserved-bytes string the sum of that hash, kept in the same Lua step
    {p}:owner:{owner}:admitting     zset   job ids a submit admitted under the quotas but
                                           has not created yet, scored by when (ms); stale
                                           after 30 s (a crashed API process)
    {p}:owner:{owner}:uploading     zset   dataset ids an upload admitted, not saved yet (same)
    {p}:owner:{owner}:scratch       zset   a quota script's temporary intersection, deleted
                                           by the same script
    {p}:job:{job_id}:webhooks       zset   the job's webhook delivery ids scored by creation
                                           (the newest 200; expires 7 days after the last)
    {p}:webhook:{delivery_id}       hash   record (JSON: status, attempts, last error...),
                                           body (the signed payload, until delivered or
                                           given up), claim (epoch s a sender holds it to);
                                           expires 7 days after its last write
    {p}:webhooks:due                zset   pending delivery ids scored by when to try next;
                                           the webhooks worker's sweep sends the due ones
    {p}:owner:{owner}:webhook-secret string the owner's signing secret ``whsec_<base64>``
    {p}:deleted-job:{job_id}        string set when an owner's job is deleted (24 h): a submit's
                                           Idempotency-Key naming it is a 409, not a job
                                           to make again (shared.idempotency)
    {p}:durable                     string a counter each acknowledgement bumps before its
                                           WAIT: a write on the WAIT's own connection that
                                           comes after every write it vouches for
                                           (shared.durability)
    {p}:prepare:{name}:{recipe}     string the token of the worker building a built-in corpus
                                           (workers.prepared); a lease (PX), renewed while
                                           it builds
    {p}:dashboard-session:{sha256(id)} string a dashboard sign-in (JSON: the key's hash, the
                                           CSRF token); expires with the session
                                           (api.dashboard.sessions)

The webhooks worker reads ``{p}:events`` through the consumer group ``webhooks``.
Celery's broker lists are named by the queue settings (``atelier-train``,
``atelier-generate``, ``atelier-webhooks``) and are Celery's, not ours; we only read their
lengths.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = "atelier"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def owner_jobs(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:jobs"

    def owner_tag(self, owner: str, tag: str) -> str:
        return f"{self.prefix}:owner:{owner}:tag:{tag}"

    def prepare_lock(self, name: str, recipe: str) -> str:
        return f"{self.prefix}:prepare:{name}:{recipe}"

    def job_logs(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:logs"

    def job_events(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:events"

    def job_metrics(self, job_id: str, series: str) -> str:
        return f"{self.prefix}:job:{job_id}:metrics:{series}"

    def job_metrics_meta(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:metrics-meta"

    def owner_events(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:events"

    @property
    def all_events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def events_wake(self) -> str:
        return f"{self.prefix}:events:wake"

    def deleted_job(self, job_id: str) -> str:
        return f"{self.prefix}:deleted-job:{job_id}"

    @property
    def durable(self) -> str:
        return f"{self.prefix}:durable"

    @property
    def running(self) -> str:
        return f"{self.prefix}:running"

    @property
    def start_deadlines(self) -> str:
        return f"{self.prefix}:start-deadlines"

    @property
    def requeued(self) -> str:
        return f"{self.prefix}:requeued"

    def queued(self, job_type: str) -> str:
        return f"{self.prefix}:queued:{job_type}"

    def fair(self, job_type: str) -> str:
        return f"{self.prefix}:fair:{job_type}"

    def fair_owner(self, job_type: str, owner: str) -> str:
        return f"{self.prefix}:fair:{job_type}:{owner}"

    def fair_tags(self, job_type: str) -> str:
        return f"{self.prefix}:fair-tags:{job_type}"

    def owner_running(self, job_type: str, owner: str) -> str:
        return f"{self.prefix}:owner-running:{job_type}:{owner}"

    @property
    def finished(self) -> str:
        return f"{self.prefix}:finished"

    @property
    def put_off_tidies(self) -> str:
        return f"{self.prefix}:put-off-tidies"

    def owed_wakeups(self, job_type: str) -> str:
        return f"{self.prefix}:owed-wakeups:{job_type}"

    def idempotency(self, owner: str, key: str) -> str:
        return f"{self.prefix}:idempotency:{owner}:{key}"

    def draining(self, generation: str) -> str:
        return f"{self.prefix}:draining:{generation}"

    def model(self, model_id: str) -> str:
        return f"{self.prefix}:model:{model_id}"

    def model_users(self, model_id: str) -> str:
        return f"{self.prefix}:model:{model_id}:users"

    def model_exports(self, model_id: str) -> str:
        return f"{self.prefix}:model:{model_id}:exports"

    def owner_models(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:models"

    def model_versions(self, owner: str, name: str) -> str:
        """A named model's versions: a list of model ids, version N at index N - 1 (a
        deleted version's entry is emptied, so the numbers never move)."""
        return f"{self.prefix}:owner:{owner}:model-name:{name}"

    def dataset(self, dataset_id: str) -> str:
        return f"{self.prefix}:dataset:{dataset_id}"

    def dataset_users(self, dataset_id: str) -> str:
        return f"{self.prefix}:dataset:{dataset_id}:users"

    def owner_datasets(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:datasets"

    def api_key(self, key_hash: str) -> str:
        return f"{self.prefix}:apikey:{key_hash}"

    def owner_api_keys(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:apikeys"

    def api_keys_used(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:apikeys-used"

    def audit(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:audit"

    def rate_limit(self, owner: str, budget: str) -> str:
        return f"{self.prefix}:ratelimit:{owner}:{budget}"

    def address_rate_limit(self, address: str) -> str:
        """The budget of a client address without valid credentials (owners cannot hold a
        colon, so these never meet an owner's)."""
        return f"{self.prefix}:ratelimit:address:{address}"

    def owner_objects(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:objects"

    def owner_stored_bytes(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:stored-bytes"

    def owner_reservations(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:reservations"

    def owner_reserved_bytes(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:reserved-bytes"

    def owner_admitting(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:admitting"

    def owner_uploading(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:uploading"

    def owner_scratch(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:scratch"

    def job_webhooks(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:webhooks"

    def webhook(self, delivery_id: str) -> str:
        return f"{self.prefix}:webhook:{delivery_id}"

    @property
    def webhooks_due(self) -> str:
        return f"{self.prefix}:webhooks:due"

    def webhook_secret(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:webhook-secret"

    def sweep(self, sweep_id: str) -> str:
        return f"{self.prefix}:sweep:{sweep_id}"

    def owner_sweeps(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}:sweeps"

    @property
    def sweeps_stopping(self) -> str:
        return f"{self.prefix}:sweeps:stopping"

    @property
    def sweeps_stopping_turn(self) -> str:
        return f"{self.prefix}:sweeps:stopping-turn"

    def sweep_stopped(self, sweep_id: str) -> str:
        return f"{self.prefix}:sweep:{sweep_id}:stopped"


KEYS = RedisKeys()
