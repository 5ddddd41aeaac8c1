{#
  An epoch-microseconds column as a TIMESTAMPTZ (an instant) for people and BI tools, beside
  the raw microseconds the pipeline keeps. A TIMESTAMPTZ shows in the session's time zone:
  analysts run `set TimeZone = 'Asia/Shanghai'` (README, "For analysts"), the calendar every
  period and day of the rulebook is in.
#}
{% macro shanghai_time(us) -%}
    make_timestamptz({{ us }})
{%- endmacro %}
