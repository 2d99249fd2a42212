-- awf_lifecycle: roles and the acting user. The first part of the fresh-install script; the
-- extension lives in schema awf (awf_lifecycle.control), which CREATE EXTENSION creates.

-- Roles. Roles are cluster-wide, so a second database reuses them.
-- Two databases creating the extension at once may both find a role missing: the loser of
-- that race finds it created.
DO $$
BEGIN
  BEGIN
    CREATE ROLE awf_app NOLOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
  END;
  BEGIN
    CREATE ROLE awf_admin NOLOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
  END;
  -- The HTTP server's role: what awf_app may do, plus presenting a device credential or an
  -- admin key for one transaction (awf.act_as_device, awf.act_as_admin).
  BEGIN
    CREATE ROLE awf_gateway NOLOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
  END;
END
$$;
GRANT awf_app TO awf_gateway;
GRANT USAGE ON SCHEMA awf TO awf_app, awf_admin;

-- The user an awf_app connection acts for (SET awf.user_id_hash = '...'). A function so the
-- policies read one definition; empty or unset sees nothing.
CREATE FUNCTION awf.current_user_id_hash() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(current_setting('awf.user_id_hash', true), '') $$;

-- Admin keys: named credentials of admin tools, presented to the HTTP gateway. Only the
-- SHA-256 of a key is stored; only the extension reads or writes this table (as its owner).
CREATE TABLE awf.admin_keys (
  name         text PRIMARY KEY,
  key_hash     text NOT NULL UNIQUE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  created_by   text NOT NULL,
  last_used_at timestamptz,
  revoked_at   timestamptz
);
SELECT pg_catalog.pg_extension_config_dump('awf.admin_keys', '');
