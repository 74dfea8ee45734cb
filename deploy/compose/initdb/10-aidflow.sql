-- aidflow's own database beside Temporal's (temporal and temporal_visibility are made by
-- the temporal service's set-up). Set the password before the first start:
--   ALTER ROLE aidflow PASSWORD '...';  (and the same in aidflow.env)
CREATE ROLE aidflow LOGIN;
CREATE DATABASE aidflow OWNER aidflow;
