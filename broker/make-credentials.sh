#!/bin/sh
# The MQTT credentials of the docker-compose stack: one user per role of
# broker/acl, each with a random password. The compose service "credentials"
# runs it (in the eclipse-mosquitto image, for mosquitto_passwd) before the
# broker starts; `tickbus broker --auth` does the same for a local broker.
#
#   make-credentials.sh DIR
#
# writes, each file mode 0600:
#   DIR/broker/passwords       mosquitto's password file, hashed
#   DIR/broker/mosquitto_sub   options (-u viewer -P ...) for the broker's
#                              healthcheck, read via XDG_CONFIG_HOME=DIR/broker
#   DIR/ROLE/ROLE.password     the role's password, for --mqtt-password-file
#
# so that each directory can be its own volume, mounted only where it is
# needed. BROKER_OWNER and CLIENT_OWNER (user:group), when set, own the broker's
# and the roles' files. No password is ever on a command line: mosquitto_passwd
# -U hashes a file of user:password lines in place.
#
# Existing credentials are kept: the broker and every service read theirs at
# start-up, so new ones must reach all of them at once. To make new ones,
# remove the volumes (docker compose down --volumes) and start again.
set -eu
umask 077

roles="feed bridge execution relay recorder operator viewer"
dir=${1:?usage: make-credentials.sh DIR}
passwords="$dir/broker/passwords"

if [ -e "$passwords" ]; then
    echo "keeping the MQTT credentials in $dir" >&2
    exit 0
fi

mkdir -p "$dir/broker"
plain="$passwords.new"
: > "$plain"
for role in $roles; do
    password=$(LC_ALL=C tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32)
    mkdir -p "$dir/$role"
    printf '%s\n' "$password" > "$dir/$role/$role.password"
    printf '%s:%s\n' "$role" "$password" >> "$plain"
    if [ "$role" = viewer ]; then
        printf '%s\n' "-u viewer" "-P $password" > "$dir/broker/mosquitto_sub"
    fi
    if [ -n "${CLIENT_OWNER:-}" ]; then
        chown "$CLIENT_OWNER" "$dir/$role/$role.password"
    fi
done
mosquitto_passwd -U "$plain"
if [ -n "${BROKER_OWNER:-}" ]; then
    chown "$BROKER_OWNER" "$plain" "$dir/broker/mosquitto_sub"
fi
# Last, and atomically: the password file's presence means "all made".
mv "$plain" "$passwords"
echo "made MQTT credentials for $roles in $dir" >&2
