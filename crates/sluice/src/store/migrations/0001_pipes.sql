-- Sluice's shared pipe store (issue 16). Names sort by bytes (COLLATE "C"), as ListPipes pages them.

-- What the user asked for: one row per pipe; `record` is the PipeRecord as JSON, `version` and
-- `desired_state` are copies of its fields for conditional writes and queries.
CREATE TABLE sluice_pipes (
    name          TEXT COLLATE "C" PRIMARY KEY,
    version       BIGINT NOT NULL,
    desired_state TEXT NOT NULL,
    record        JSONB NOT NULL
);

-- Instances that use the store, with their last heartbeat (database time, so clocks may differ).
CREATE TABLE sluice_instances (
    id           TEXT PRIMARY KEY,
    heartbeat_at TIMESTAMPTZ NOT NULL
);

-- What each instance observes of each pipe's runtime.
CREATE TABLE sluice_observations (
    pipe        TEXT COLLATE "C" NOT NULL REFERENCES sluice_pipes (name) ON DELETE CASCADE,
    instance    TEXT NOT NULL REFERENCES sluice_instances (id) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    phase       TEXT NOT NULL,
    observation JSONB NOT NULL,
    observed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (pipe, instance)
);
CREATE INDEX sluice_observations_instance ON sluice_observations (instance);
