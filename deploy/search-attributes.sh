#!/usr/bin/env bash
# Register aidflow's custom search attributes on a Temporal cluster (once per namespace).
# Usage: deploy/search-attributes.sh [--address host:7233] [--namespace ns] [other temporal CLI options]
# (aidflow up registers them itself on the embedded dev server.)
set -euo pipefail
temporal operator search-attribute create "$@" \
  --name Programme --type Keyword \
  --name Season --type Int \
  --name Round --type Keyword \
  --name County --type Keyword \
  --name Township --type Keyword \
  --name Village --type Keyword \
  --name Stage --type Keyword \
  --name WaitingFor --type Keyword \
  --name Overdue --type Bool \
  --name AtRisk --type Bool \
  --name NextDeadline --type Datetime
