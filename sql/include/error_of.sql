-- error_of(sql): runs a statement that should fail and shows its error as
-- "SQLSTATE: message", then DETAIL and HINT lines (no source locations, so
-- the expected output does not depend on the server's build).
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	v_state text;
	v_msg text;
	v_detail text;
	v_hint text;
BEGIN
	EXECUTE sql;
	RETURN 'no error';
EXCEPTION WHEN others THEN
	GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
		v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
	RETURN v_state || ': ' || v_msg
		|| coalesce(E'\nDETAIL: ' || nullif(v_detail, ''), '')
		|| coalesce(E'\nHINT: ' || nullif(v_hint, ''), '');
END
$$;
