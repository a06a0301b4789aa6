/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  eventbus.capture(): the outbox trigger for existing tables.  Each row
 *	  change of the table is published as an event in the same transaction.
 *
 * The trigger is not SECURITY DEFINER.  It converts the rows to JSON with
 * the rights of the role whose write fires it, as any trigger would: that
 * is where the rows' types' output functions and user-defined casts to
 * json run.  Only the finished event (plain text and jsonb) crosses into
 * the extension owner's rights, to be published by eventbus_put_event(),
 * which owns every publish check.  The switch is the one fmgr makes for a
 * SECURITY DEFINER function: the owner's user id, a restricted security
 * context and search_path = pg_catalog, pg_temp, all undone afterwards
 * (and, on an error, by the transaction's or subtransaction's abort).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

PG_FUNCTION_INFO_V1(eventbus_capture);

/* src/publish.c: eventbus.put_event(), called directly (see publish()). */
extern Datum eventbus_put_event(PG_FUNCTION_ARGS);

#define CAPTURE_USAGE_HINT \
	"EXECUTE FUNCTION eventbus.capture('com.example.orders' [, 'bus'] [, 'rows=full|new|keys'] [, 'detail_type=orders'])."

/* What of the rows goes into the detail (trigger argument rows=...). */
typedef enum CaptureRows
{
	ROWS_FULL,					/* new and old rows whole */
	ROWS_NEW,					/* the new row whole, the old row's key */
	ROWS_KEYS					/* the key of the new and of the old row */
} CaptureRows;

/* The trigger's arguments, parsed. */
typedef struct CaptureArgs
{
	const char *source;
	const char *bus;			/* NULL: the default bus */
	CaptureRows rows;
	const char *rows_name;
	const char *detail_type;	/* NULL: "<schema>.<table>" */
} CaptureArgs;

/* What the error context callback says about a failed publish. */
typedef struct CaptureErrorContext
{
	const char *trigger;
	const char *schema;
	const char *table;
	const char *operation;
	const char *rows_name;
} CaptureErrorContext;

static void bad_arguments(TriggerData *trigdata, const char *why,
						  const char *value) pg_attribute_noreturn();

/* Raises the error for bad trigger arguments. */
static void
bad_arguments(TriggerData *trigdata, const char *why, const char *value)
{
	Relation	rel = trigdata->tg_relation;

	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("invalid arguments for eventbus.capture() in trigger \"%s\" on table \"%s.%s\": %s",
					trigdata->tg_trigger->tgname,
					get_namespace_name(RelationGetNamespace(rel)),
					RelationGetRelationName(rel), why),
			 value ? errdetail("The argument given is '%s'.", value)
			 : errdetail("The trigger passes %d argument(s).",
						 trigdata->tg_trigger->tgnargs),
			 errhint(CAPTURE_USAGE_HINT)));
}

/*
 * Parses the trigger's arguments: the source, then the bus and options of
 * the form name=value in any order (a bus name never holds "=").
 */
static void
parse_arguments(TriggerData *trigdata, CaptureArgs *args)
{
	Trigger    *trigger = trigdata->tg_trigger;
	bool		rows_seen = false;
	int			i;

	memset(args, 0, sizeof(*args));
	args->rows = ROWS_FULL;
	args->rows_name = "full";

	if (trigger->tgnargs < 1 || trigger->tgargs[0][0] == '\0')
		bad_arguments(trigdata, "the first argument must be the event source",
					  trigger->tgnargs < 1 ? NULL : trigger->tgargs[0]);
	args->source = trigger->tgargs[0];

	for (i = 1; i < trigger->tgnargs; i++)
	{
		const char *arg = trigger->tgargs[i];
		const char *eq = strchr(arg, '=');

		if (eq == NULL)
		{
			if (i != 1)
				bad_arguments(trigdata, "the bus must be the second argument", arg);
			args->bus = arg;
		}
		else if (strncmp(arg, "rows=", 5) == 0 && !rows_seen)
		{
			rows_seen = true;
			args->rows_name = eq + 1;
			if (strcmp(eq + 1, "full") == 0)
				args->rows = ROWS_FULL;
			else if (strcmp(eq + 1, "new") == 0)
				args->rows = ROWS_NEW;
			else if (strcmp(eq + 1, "keys") == 0)
				args->rows = ROWS_KEYS;
			else
				bad_arguments(trigdata, "rows must be full, new or keys", arg);
		}
		else if (strncmp(arg, "detail_type=", 12) == 0 && args->detail_type == NULL)
		{
			if (eq[1] == '\0')
				bad_arguments(trigdata, "detail_type must not be empty", arg);
			args->detail_type = eq + 1;
		}
		else
			bad_arguments(trigdata, "unknown or repeated option", arg);
	}
}

/*
 * pg_catalog.to_jsonb(row), called with the current user's rights.  The
 * row is a composite datum of type typid; to_jsonb reads its argument's
 * type from the call expression, so the call gets one.
 */
static Jsonb *
row_to_jsonb(Datum row, Oid typid)
{
	FmgrInfo	flinfo;
	FuncExpr   *expr;

	fmgr_info(F_TO_JSONB, &flinfo);
	expr = makeFuncExpr(F_TO_JSONB, JSONBOID,
						list_make1(makeNullConst(typid, -1, InvalidOid)),
						InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	fmgr_info_set_expr((Node *) expr, &flinfo);
	return DatumGetJsonbP(FunctionCall1(&flinfo, row));
}

/* The table's key columns, as a record descriptor and their attnums. */
typedef struct KeyColumns
{
	TupleDesc	desc;
	AttrNumber *attnums;
} KeyColumns;

/*
 * The table's key columns (those of its replica identity index: the
 * primary key unless REPLICA IDENTITY USING INDEX names another), for
 * rows=new and rows=keys.
 */
static KeyColumns *
key_columns(Relation rel, TriggerData *trigdata, const char *rows_name)
{
	Bitmapset  *keys = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_IDENTITY_KEY);
	TupleDesc	desc = RelationGetDescr(rel);
	KeyColumns *kc;
	int			n = 0;
	int			i;

	if (bms_is_empty(keys))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s.%s\" has no primary key for eventbus.capture() with rows=%s",
						get_namespace_name(RelationGetNamespace(rel)),
						RelationGetRelationName(rel), rows_name),
				 errdetail("Trigger \"%s\" puts the key of the old row (rows=new) or of both rows (rows=keys) into the event.",
						   trigdata->tg_trigger->tgname),
				 errhint("Add a primary key (or set REPLICA IDENTITY USING INDEX), or use rows=full.")));

	kc = palloc(sizeof(KeyColumns));
	kc->desc = CreateTemplateTupleDesc(bms_num_members(keys));
	kc->attnums = palloc(sizeof(AttrNumber) * bms_num_members(keys));
	for (i = 1; i <= desc->natts; i++)
	{
		if (bms_is_member(i - FirstLowInvalidHeapAttributeNumber, keys))
		{
			kc->attnums[n] = i;
			TupleDescCopyEntry(kc->desc, ++n, desc, i);
		}
	}
	kc->desc = BlessTupleDesc(kc->desc);
	return kc;
}

/* The key columns of a row, as a jsonb object (current user's rights). */
static Jsonb *
key_to_jsonb(HeapTuple tuple, Relation rel, KeyColumns *kc)
{
	int			n = kc->desc->natts;
	Datum	   *values = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);
	int			i;

	for (i = 0; i < n; i++)
		values[i] = heap_getattr(tuple, kc->attnums[i], RelationGetDescr(rel),
								 &nulls[i]);
	return row_to_jsonb(HeapTupleGetDatum(heap_form_tuple(kc->desc, values, nulls)),
						RECORDOID);
}

/* A row as the detail holds it: whole, or its key only. */
static Jsonb *
row_for_detail(HeapTuple tuple, Relation rel, bool whole, KeyColumns *kc)
{
	if (whole)
		return row_to_jsonb(heap_copy_tuple_as_datum(tuple, RelationGetDescr(rel)),
							RelationGetDescr(rel)->tdtypeid);
	return key_to_jsonb(tuple, rel, kc);
}

/* Adds "key": "string" to an object being built. */
static void
push_string(JsonbParseState **state, const char *key, const char *value)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &v);
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	pushJsonbValue(state, WJB_VALUE, &v);
}

/* Adds "key": <jsonb or null> to an object being built. */
static void
push_jsonb(JsonbParseState **state, const char *key, Jsonb *value)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &v);
	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvBinary;
		v.val.binary.data = &value->root;
		v.val.binary.len = VARSIZE(value) - VARHDRSZ;
	}
	pushJsonbValue(state, WJB_VALUE, &v);
}

/* The extension owner, whose rights publish the event. */
static Oid
extension_owner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			owner;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("pg_eventbus"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"pg_eventbus\" does not exist"),
				 errhint("Run CREATE EXTENSION pg_eventbus.")));
	owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return owner;
}

/*
 * Error context of a failed publish: names the trigger and, for the two
 * limits a table's changes can hit, the trigger argument that avoids it.
 */
static void
capture_error_context(void *arg)
{
	CaptureErrorContext *c = (CaptureErrorContext *) arg;

	switch (geterrcode())
	{
		case ERRCODE_PROGRAM_LIMIT_EXCEEDED:
			errcontext("eventbus.capture() trigger \"%s\" on table \"%s.%s\" after %s, with rows=%s; the trigger argument rows=new or rows=keys puts less of the rows into the event",
					   c->trigger, c->schema, c->table, c->operation,
					   c->rows_name);
			break;
		case ERRCODE_INVALID_PARAMETER_VALUE:
			errcontext("eventbus.capture() trigger \"%s\" on table \"%s.%s\" after %s; the trigger's arguments set the source and, with detail_type=..., a shorter detail-type",
					   c->trigger, c->schema, c->table, c->operation);
			break;
		default:
			errcontext("eventbus.capture() trigger \"%s\" on table \"%s.%s\" after %s",
					   c->trigger, c->schema, c->table, c->operation);
			break;
	}
}

/*
 * Publishes the event with the extension owner's rights, as the
 * SECURITY DEFINER eventbus.put_event() would: owner's user id, restricted
 * security context, pinned search_path.  On an error the abort of the
 * (sub)transaction restores user id and settings, as for fmgr's
 * security-definer calls.
 */
static void
publish(const char *source, const char *detail_type, Jsonb *detail,
		const char *bus)
{
	LOCAL_FCINFO(fcinfo, 6);
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	Oid			owner = extension_owner();

	InitFunctionCallInfoData(*fcinfo, NULL, 6, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = CStringGetTextDatum(source);
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = CStringGetTextDatum(detail_type);
	fcinfo->args[1].isnull = false;
	fcinfo->args[2].value = JsonbPGetDatum(detail);
	fcinfo->args[2].isnull = false;
	fcinfo->args[3].value = (Datum) 0;	/* resources: none */
	fcinfo->args[3].isnull = true;
	fcinfo->args[4].value = bus ? CStringGetTextDatum(bus) : (Datum) 0;
	fcinfo->args[4].isnull = (bus == NULL); /* NULL: the default bus */
	fcinfo->args[5].value = (Datum) 0;	/* time: now */
	fcinfo->args[5].isnull = true;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 superuser() ? PGC_SUSET : PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

	(void) eventbus_put_event(fcinfo);

	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * eventbus.capture(source [, bus] [, 'rows=full|new|keys']
 *					[, 'detail_type=...'])
 * AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW trigger.
 */
Datum
eventbus_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	CaptureArgs args;
	CaptureErrorContext ectx;
	ErrorContextCallback errcallback;
	KeyColumns *keys = NULL;
	const char *operation;
	const char *schema;
	const char *table;
	Jsonb	   *new_row = NULL;
	Jsonb	   *old_row = NULL;
	JsonbParseState *state = NULL;
	JsonbValue *detail;
	char	   *detail_type;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventbus.capture() can only be called as a trigger"),
				 errhint(CAPTURE_USAGE_HINT)));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventbus.capture() must be an AFTER ... FOR EACH ROW trigger"),
				 errdetail("Trigger \"%s\" on table \"%s.%s\" is not.",
						   trigdata->tg_trigger->tgname,
						   get_namespace_name(RelationGetNamespace(trigdata->tg_relation)),
						   RelationGetRelationName(trigdata->tg_relation)),
				 errhint("CREATE TRIGGER ... AFTER INSERT OR UPDATE OR DELETE ON your_table FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.source');")));
	parse_arguments(trigdata, &args);

	rel = trigdata->tg_relation;
	schema = get_namespace_name(RelationGetNamespace(rel));
	table = RelationGetRelationName(rel);

	/* a table without a key fails at its first change, whatever it is */
	if (args.rows != ROWS_FULL)
		keys = key_columns(rel, trigdata, args.rows_name);

	/* The rows, converted with the rights of the role whose write fired us. */
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		operation = "INSERT";
		new_row = row_for_detail(trigdata->tg_trigtuple, rel,
								 args.rows != ROWS_KEYS, keys);
	}
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		operation = "UPDATE";
		new_row = row_for_detail(trigdata->tg_newtuple, rel,
								 args.rows != ROWS_KEYS, keys);
		old_row = row_for_detail(trigdata->tg_trigtuple, rel,
								 args.rows == ROWS_FULL, keys);
	}
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		operation = "DELETE";
		old_row = row_for_detail(trigdata->tg_trigtuple, rel,
								 args.rows == ROWS_FULL, keys);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventbus.capture() captures INSERT, UPDATE and DELETE only"),
				 errhint("CREATE TRIGGER ... AFTER INSERT OR UPDATE OR DELETE ON your_table FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.source');")));

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_string(&state, "operation", operation);
	push_string(&state, "schema", schema);
	push_string(&state, "table", table);
	push_jsonb(&state, "new", new_row);
	push_jsonb(&state, "old", old_row);
	detail = pushJsonbValue(&state, WJB_END_OBJECT, NULL);

	if (args.detail_type)
		detail_type = psprintf("%s %s", args.detail_type, operation);
	else
		detail_type = psprintf("%s.%s %s", schema, table, operation);

	/* Only the finished event crosses into the owner's rights. */
	ectx.trigger = trigdata->tg_trigger->tgname;
	ectx.schema = schema;
	ectx.table = table;
	ectx.operation = operation;
	ectx.rows_name = args.rows_name;
	errcallback.callback = capture_error_context;
	errcallback.arg = &ectx;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	publish(args.source, detail_type, JsonbValueToJsonb(detail), args.bus);

	error_context_stack = errcallback.previous;

	return PointerGetDatum(NULL);
}
