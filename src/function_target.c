/*-------------------------------------------------------------------------
 *
 * function_target.c
 *	  SQL-function targets: a target that names schema.fn(jsonb) instead of
 *	  an endpoint.  The worker calls the function with the event (or its
 *	  transformation) in a transaction of its own, as the function's owner;
 *	  a return is a delivery, an error a failure that the retry policy
 *	  (policy.c, eb_function_transport) retries or dead-letters.
 *
 * The rights: a role that may call put_target must not make the worker,
 * which runs as the bootstrap superuser, run a function that the role
 * could not run itself, nor with more rights than its owner has.  So:
 *
 *	  put_target  the function must take one jsonb, be a plain function
 *				  returning one value, not be owned by a superuser, and the
 *				  role calling put_target (the session's current role: SET
 *				  ROLE's, which SECURITY DEFINER functions in between do not
 *				  change) must be able to execute it and have its owner's
 *				  rights (own it, or be a member of its owner role);
 *	  delivery	  the name is resolved again and the function checked again
 *				  (ownership and grants change): not a superuser's, still
 *				  executable by its owner; then it runs as the owner, in a
 *				  security-restricted operation (no SET ROLE, no temporary
 *				  objects or prepared statements that outlive the call), with
 *				  search_path pinned to pg_catalog, pg_temp, its own SET
 *				  clauses honoured, statement_timeout the target's timeout,
 *				  and every setting it changed undone afterwards.  Nothing
 *				  of it runs at commit, which is the worker's: PostgreSQL
 *				  refuses constraint triggers deferred to the end of the
 *				  transaction within a security-restricted operation (42501),
 *				  and cursors WITH HOLD.
 *
 * A failed check at delivery is an error like any other the function
 * could raise (42501, 42883, ...): the delivery is dead-lettered with it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "function_target.h"
#include "policy.h"

PG_FUNCTION_INFO_V1(eventbus_check_target_function);

/*
 * Finds the function a target names: "schema.fn" or "schema.fn(jsonb)",
 * always schema-qualified (so that neither the caller's nor the worker's
 * search_path decides), taking exactly one jsonb.  Raises 22023 for a name
 * that is not one, 42883 when there is no such function.
 */
static Oid
lookup_function(const char *given, const char *target_id)
{
	char	   *raw = pstrdup(given);
	char	   *paren = strchr(raw, '(');
	List	   *names;
	Oid			nsp;
	Oid			jsonb_type = JSONBOID;
	Oid			fn = InvalidOid;

	if (paren != NULL)
	{
		char	   *args = paren + 1;
		char	   *close = strrchr(args, ')');

		if (close == NULL || strspn(close + 1, " \t\r\n") != strlen(close + 1))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid function \"%s\" for target \"%s\"", given, target_id),
					 errdetail("The argument list is not closed by \")\" at the end."),
					 errhint("Name it as schema.function or schema.function(jsonb).")));
		*close = '\0';
		while (*args == ' ' || *args == '\t')
			args++;
		for (char *e = args + strlen(args); e > args && (e[-1] == ' ' || e[-1] == '\t'); e--)
			e[-1] = '\0';
		if (pg_strcasecmp(args, "jsonb") != 0 && pg_strcasecmp(args, "pg_catalog.jsonb") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("function \"%s\" of target \"%s\" must take one argument of type jsonb",
							given, target_id),
					 errdetail("The argument list given is (%s).", args),
					 errhint("A function target is called with the event as jsonb: schema.function(jsonb).")));
		*paren = '\0';
	}
	if (!SplitIdentifierString(raw, '.', &names) || list_length(names) != 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid function \"%s\" for target \"%s\"", given, target_id),
				 errdetail("A function target's function must be named with its schema."),
				 errhint("Name it as schema.function, for example 'app.on_order'.")));

	nsp = get_namespace_oid(linitial(names), true);
	if (OidIsValid(nsp))
		fn = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
							 CStringGetDatum((char *) lsecond(names)),
							 PointerGetDatum(buildoidvector(&jsonb_type, 1)),
							 ObjectIdGetDatum(nsp));
	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s(jsonb) of target \"%s\" does not exist",
						quote_qualified_identifier(linitial(names), lsecond(names)),
						target_id),
				 errhint("A function target calls schema.function(event jsonb): create it, or correct the name.")));
	return fn;
}

/*
 * Checks the rights rules of the file's header comment on function `fn`:
 * its kind, its owner (never a superuser; able to execute it) and, when
 * `caller` is valid (put_target), the caller's EXECUTE right and its
 * owner's rights.  Returns the owner.  Raises 22023 or 42501.
 */
static Oid
check_function(Oid fn, Oid caller, const char *target_id)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Form_pg_proc proc;
	char	   *name;
	Oid			owner;
	char		kind;
	bool		retset;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", fn);
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	owner = proc->proowner;
	kind = proc->prokind;
	retset = proc->proretset;
	name = psprintf("%s(jsonb)",
					quote_qualified_identifier(get_namespace_name(proc->pronamespace),
											   NameStr(proc->proname)));
	ReleaseSysCache(tuple);

	if (kind != PROKIND_FUNCTION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of target \"%s\" is not a plain function", name, target_id),
				 errdetail("It is %s.", kind == PROKIND_PROCEDURE ? "a procedure" :
						   kind == PROKIND_AGGREGATE ? "an aggregate" : "a window function"),
				 errhint("A function target calls a function of one jsonb argument; its result is ignored.")));
	if (retset)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("function %s of target \"%s\" returns a set", name, target_id),
				 errhint("A function target calls a function that returns one value (or void); its result is ignored.")));
	if (superuser_arg(owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("function %s of target \"%s\" is owned by superuser \"%s\"",
						name, target_id, GetUserNameFromId(owner, false)),
				 errdetail("A function target runs as its function's owner, never as a superuser."),
				 errhint("Make a role without superuser own it: ALTER FUNCTION %s OWNER TO ...", name)));
	if (pg_proc_aclcheck(fn, owner, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s of target \"%s\"", name, target_id),
				 errdetail("Its owner \"%s\" may not execute it.", GetUserNameFromId(owner, false)),
				 errhint("GRANT EXECUTE ON FUNCTION %s TO the owner.", name)));
	if (!OidIsValid(caller))
		return owner;
	if (pg_proc_aclcheck(fn, caller, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", name),
				 errdetail("Role \"%s\" may not execute it, so it may not make target \"%s\" call it.",
						   GetUserNameFromId(caller, false), target_id),
				 errhint("Name a function the role may execute, or GRANT EXECUTE on it.")));
	if (!has_privs_of_role(caller, owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not make target \"%s\" call function %s",
						GetUserNameFromId(caller, false), target_id, name),
				 errdetail("The worker runs it as its owner \"%s\", whose rights role \"%s\" does not have.",
						   GetUserNameFromId(owner, false), GetUserNameFromId(caller, false)),
				 errhint("Name a function owned by the role or by a role it is a member of, or let the owner call put_target.")));
	return owner;
}

/*
 * check_target_function(target_id, function, endpoint, headers): the
 * check put_target runs on its "function" argument (see the upgrade
 * script).  Exactly one of endpoint and function; a function target sends
 * no headers; the function found and checked with the rights of the role
 * that calls put_target.  Returns its canonical name, "schema.fn(jsonb)",
 * which put_target stores, or NULL for an HTTP target.
 */
Datum
eventbus_check_target_function(PG_FUNCTION_ARGS)
{
	char	   *target_id = PG_ARGISNULL(0) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			fn;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(2))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("target \"%s\" has neither an endpoint nor a function", target_id),
					 errdetail("endpoint and function are both NULL."),
					 errhint("Give endpoint => 'https://...' for an HTTP target, or function => 'schema.function' for a SQL-function target.")));
		PG_RETURN_NULL();
	}
	if (!PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target \"%s\" has both an endpoint and a function", target_id),
				 errdetail("endpoint is \"%s\"; function is \"%s\".",
						   text_to_cstring(PG_GETARG_TEXT_PP(2)),
						   text_to_cstring(PG_GETARG_TEXT_PP(1))),
				 errhint("Give endpoint for an HTTP target or function for a SQL-function target, not both.")));
	if (!PG_ARGISNULL(3))
	{
		Jsonb	   *headers = PG_GETARG_JSONB_P(3);

		if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_COUNT(headers) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("target \"%s\" calls a function and sends no headers", target_id),
					 errdetail("headers is %s.", JsonbToCString(NULL, &headers->root,
																VARSIZE(headers))),
					 errhint("Leave headers out for a SQL-function target.")));
	}
	fn = lookup_function(text_to_cstring(PG_GETARG_TEXT_PP(1)), target_id);
	(void) check_function(fn, GetOuterUserId(), target_id);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s(jsonb)",
											  quote_qualified_identifier(get_namespace_name(get_func_namespace(fn)),
																		 get_func_name(fn)))));
}

/*
 * The call itself, inside the delivery's transaction: checks the function
 * again, then runs it as its owner in a security-restricted operation
 * with the worker's settings pinned (see the file's header comment).
 * Raises whatever the function raises.
 */
static void
call_as_owner(EbDelivery *d)
{
	const char *target_id = strrchr(d->target_key, '\x1f') + 1;
	Oid			fn = lookup_function(d->function, target_id);
	Oid			owner = check_function(fn, InvalidOid, target_id);
	Datum		arg;
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, 1);
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	char		timeout[32];

	/* what the target receives: JSON as jsonb, text as a JSON string */
	if (d->plain_text)
	{
		StringInfoData json;

		initStringInfo(&json);
		escape_json(&json, d->http.body);
		arg = DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data));
	}
	else
		arg = DirectFunctionCall1(jsonb_in, CStringGetDatum(d->http.body));

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	snprintf(timeout, sizeof(timeout), "%ld", d->http.timeout_ms);
	(void) set_config_option("statement_timeout", timeout, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = arg;
	fcinfo->args[0].isnull = false;
	enable_timeout_after(STATEMENT_TIMEOUT, (int) d->http.timeout_ms);
	(void) FunctionCallInvoke(fcinfo);
	disable_timeout(STATEMENT_TIMEOUT, false);

	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * A statement timeout that fired after the call had ended: forget it, or
 * the worker's next CHECK_FOR_INTERRUPTS would take it for its own.
 */
static void
forget_statement_timeout(void)
{
	disable_timeout(STATEMENT_TIMEOUT, false);
	if (get_timeout_indicator(STATEMENT_TIMEOUT, true))
		QueryCancelPending = false;
}

/*
 * Runs a claimed delivery of a function target: calls its function in a
 * transaction of its own and records the outcome in the delivery, for
 * settle, as a request's would be: http.transport from the SQLSTATE
 * (eb_function_transport), function_error the error, prefixed by its
 * SQLSTATE and cut at EB_FUNCTION_ERROR_MAX bytes.  A delivery whose lease
 * would end before a call could time out is not called (the claim took it
 * behind slower calls): it is retried.  Must be called outside any
 * transaction; an error of the function never escapes, a FATAL (SIGTERM)
 * ends the worker, which hands its leases back.
 */
void
eb_function_target_call(EbDelivery *d)
{
	MemoryContext keep = GetMemoryChunkContext(d);
	MemoryContext old = CurrentMemoryContext;
	TimestampTz start = GetCurrentTimestamp();
	ErrorData  *edata = NULL;
	const char *sqlstate = NULL;
	char	   *message;

	if (start + d->http.timeout_ms * 1000 >= d->lease)
	{
		MemoryContextSwitchTo(keep);
		d->http.transport = EB_TRANSPORT_FUNCTION_RETRYABLE;
		d->function_error = psprintf("%s was not called: its lease ran out behind other calls",
									 d->function);
		MemoryContextSwitchTo(old);
		return;
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "pg_eventbus: calling a function target");
	PG_TRY();
	{
		call_as_owner(d);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(keep);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();
	forget_statement_timeout();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(old);

	d->http.seconds = (double) (GetCurrentTimestamp() - start) / USECS_PER_SEC;
	if (edata == NULL)
	{
		d->http.transport = eb_function_transport(NULL);
		return;
	}
	sqlstate = unpack_sql_state(edata->sqlerrcode);
	d->http.transport = eb_function_transport(sqlstate);
	message = psprintf("%s raised SQLSTATE %s: %s", d->function, sqlstate,
					   edata->message ? edata->message : "");
	message[pg_mbcliplen(message, strlen(message), EB_FUNCTION_ERROR_MAX)] = '\0';
	d->function_error = MemoryContextStrdup(keep, message);
	pfree(message);
	FreeErrorData(edata);
}
