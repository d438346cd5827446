# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# bash completion for wcache(8): subcommands, their options and the
# dm-writecache table options, option values, and file paths.
#
# Options are read from 'wcache COMMAND --help' of the wcache being
# completed (once per command and shell), so they always match that
# binary: the table options there come from the library's one option
# table (wcache_options()), the same one that parses them.

_wcache_has()
{
	local w want=$1
	shift
	for w in "$@"; do
		[[ $w == "$want" ]] && return 0
	done
	return 1
}

# _wcache_opts WCACHE CMD: set _wcache_o (the long options of CMD) and
# _wcache_a (those that take a value).
_wcache_opts()
{
	local key="$1 $2" help tok prev='' words=()
	[[ ${_wcache_cache_key-} == "$key" ]] && return
	help=$("$1" "$2" --help 2>/dev/null)
	_wcache_o=()
	_wcache_a=()
	# read -a: word splitting without pathname expansion of "[--opt".
	read -r -d '' -a words <<<"$help"
	# "--name" followed by an upper-case placeholder (PATH, N, MS,
	# ADDR:PORT) somewhere in the help: the option takes a value.
	for tok in "${words[@]}"; do
		tok=${tok#[}
		tok=${tok%]}
		tok=${tok%,}
		if [[ $prev == --* && $tok =~ ^[A-Z][A-Z:_]*$ ]] &&
			! _wcache_has "$prev" "${_wcache_a[@]}"; then
			_wcache_a+=("$prev")
		fi
		if [[ $tok =~ ^--[a-z][a-z0-9_-]*$ ]]; then
			_wcache_has "$tok" "${_wcache_o[@]}" || _wcache_o+=("$tok")
			prev=$tok
		else
			prev=''
		fi
	done
	_wcache_cache_key=$key
}

# _wcache_gen CUR COMPGEN-ARGS...: COMPREPLY from compgen, one word a line.
_wcache_gen()
{
	local cur=$1
	shift
	mapfile -t COMPREPLY < <(compgen "$@" -- "$cur")
}

_wcache_commands()
{
	"$1" --help 2>/dev/null | sed -n '/^Commands:/,/^$/s/^  \([a-z]\{1,\}\) .*/\1/p'
}

# Completion values of an option that takes one; false if none are known.
_wcache_values()
{
	local opt=$1 cur=$2 prefix=${3-}
	case $opt in
	--format) _wcache_gen "$cur" -P "$prefix" -W 'auto yes no' ;;
	--cache-io) _wcache_gen "$cur" -P "$prefix" -W 'direct buffered' ;;
	--block-size | --block_size) _wcache_gen "$cur" -P "$prefix" -W '512 1024 2048 4096' ;;
	--control | --socket | --pidfile | --metrics-file | --log | --plugin)
		compopt -o filenames 2>/dev/null
		_wcache_gen "$cur" -P "$prefix" -f
		;;
	*) return 1 ;;
	esac
}

_wcache()
{
	local wc=$1 cur prev='' cmd='' i
	cur=${COMP_WORDS[COMP_CWORD]}
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()

	# The subcommand: the first word after the global options.
	for ((i = 1; i < COMP_CWORD; i++)); do
		if [[ ${COMP_WORDS[i]} != -* ]]; then
			cmd=${COMP_WORDS[i]}
			break
		fi
	done

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			_wcache_gen "$cur" -W '--verbose --version --help'
		else
			_wcache_gen "$cur" -W "$(_wcache_commands "$wc") help"
		fi
		return
	fi
	if [[ $cmd == help ]]; then
		((COMP_CWORD == i + 1)) && _wcache_gen "$cur" -W "$(_wcache_commands "$wc")"
		return
	fi

	_wcache_opts "$wc" "$cmd"
	# "--opt=VALUE" as bash splits it (COMP_WORDBREAKS has '='): "--opt" "=" "VALUE".
	if [[ $cur == = ]]; then
		_wcache_values "$prev" "" || true
		return
	fi
	if [[ $prev == = ]] && ((COMP_CWORD >= 2)); then
		_wcache_values "${COMP_WORDS[COMP_CWORD - 2]}" "$cur" || true
		return
	fi
	# "--opt VALUE"
	if [[ $prev == --* ]] && _wcache_has "$prev" "${_wcache_a[@]}"; then
		_wcache_values "$prev" "$cur" || true	# a number or an address: nothing to offer
		return
	fi
	# "--opt=VALUE" as one word (COMP_WORDBREAKS without '=')
	if [[ $cur == --*=* ]]; then
		_wcache_values "${cur%%=*}" "${cur#*=}" "${cur%%=*}=" || true
		return
	fi
	if [[ $cur == -* ]]; then
		_wcache_gen "$cur" -W "${_wcache_o[*]}"
		return
	fi
	if [[ $cmd == message ]]; then
		_wcache_gen "$cur" -W 'flush flush_on_suspend cleaner clear_stats'
		return
	fi
	# Positional arguments are devices, image files or a mount point.
	compopt -o filenames 2>/dev/null
	_wcache_gen "$cur" -f
}
complete -F _wcache wcache
