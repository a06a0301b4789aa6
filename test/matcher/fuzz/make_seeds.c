/*
 * make_seeds.c
 *	  Write fuzzing seeds from the conformance corpus (read-only) into a
 *	  build directory: "parse" writes each pattern, "match" writes
 *	  [pattern, event] pairs.  usage: make_seeds parse|match corpus outdir
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

int
main(int argc, char **argv)
{
	FILE	   *f;
	char	   *line = NULL;
	size_t		cap = 0;
	int			n = 0;

	if (argc != 4 || (f = fopen(argv[2], "r")) == NULL)
		return 2;
	while (getline(&line, &cap, f) > 0)
	{
		json_error_t err;
		json_t	   *c = json_loads(line, 0, &err);
		json_t	   *pat,
				   *ev;
		char	   *text = NULL;
		char		path[4096];
		FILE	   *out;

		if (c == NULL)
			continue;			/* e.g. numbers jansson cannot hold */
		pat = json_object_get(c, "pattern");
		ev = json_object_get(c, "event");
		if (strcmp(argv[1], "parse") == 0)
		{
			if (pat && !json_is_null(pat))
				text = json_dumps(pat, JSON_ENCODE_ANY);
			else if (json_is_string(json_object_get(c, "pattern_text")))
				text = strdup(json_string_value(json_object_get(c, "pattern_text")));
		}
		else if (pat && !json_is_null(pat) && ev)
		{
			json_t	   *pair = json_pack("[OO]", pat, ev);

			text = json_dumps(pair, 0);
			json_decref(pair);
		}
		if (text)
		{
			snprintf(path, sizeof(path), "%s/seed%05d.json", argv[3], n++);
			out = fopen(path, "w");
			if (out)
			{
				fputs(text, out);
				fclose(out);
			}
			free(text);
		}
		json_decref(c);
	}
	free(line);
	fclose(f);
	return 0;
}
