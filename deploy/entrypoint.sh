#!/bin/sh
# Entry point of the stack's containers (the app image's ENTRYPOINT, and mounted into mysql's).
#
# 1. Refuses to start while a secret this container was given is still a placeholder: any variable
#    whose name ends in PASSWORD, or PAYMENT_DB_URL, whose value contains "change-me". The message names
#    the variable, never its value.
# 2. Reads VAR from the file named by VAR_FILE when VAR is unset (the secrets-as-files convention of the
#    official images): the scoring runs get PAYMENT_DB_URL this way, from a volume only they mount.
# Then runs the container's command in its place, so that signals reach it directly.
set -eu

for file_var in $(env | sed -n 's/^\([A-Z0-9_]*\)_FILE=.*/\1/p'); do
	eval "current=\${$file_var:-}"
	eval "path=\${${file_var}_FILE}"
	if [ -z "$current" ]; then
		if [ ! -r "$path" ]; then
			echo "entrypoint: ${file_var}_FILE names $path, which cannot be read" >&2
			exit 1
		fi
		value=$(cat "$path")
		export "$file_var=$value"
	fi
done

placeholders=""
for name in $(env | sed -n 's/^\([A-Z0-9_]*PASSWORD\)=.*/\1/p; s/^\(PAYMENT_DB_URL\)=.*/\1/p'); do
	eval "value=\${$name}"
	case "$value" in
	*change-me*) placeholders="$placeholders $name" ;;
	esac
done
if [ -n "$placeholders" ]; then
	echo "refusing to start: still a change-me placeholder:$placeholders (set them in deploy/.env)" >&2
	exit 78
fi

exec "$@"
