{#
  Who earns on each line (rulebook §5), from `lines` (a CTE or relation with the attributed
  promoter in `attributed_promoter_id`, `direct_rate_e4` and `paid_at_us`): one row per line and
  role — `direct` to the attributed promoter at the line's rate, `override` to their upline at
  commission.override_rate — with the earner in `earner_id`, the role's `rate_e4` and `status`:
  unknown_promoter (the earner is not in promoters.csv), suspended (paid at or after the earner's
  suspended_at) or ok. Only status ok earns. The one home of these rules: the entitlements of
  a period and the estimates to date both use it.
#}
{% macro commission_roles(lines) %}
    select
        r.*,
        case
            when e.promoter_id is null then 'unknown_promoter'
            when e.suspended_at_us is not null and r.paid_at_us >= e.suspended_at_us then 'suspended'
            else 'ok'
        end as status
    from (
        select
            l.*,
            'direct' as role,
            l.attributed_promoter_id as earner_id,
            l.direct_rate_e4 as rate_e4
        from {{ lines }} as l
        union all
        select
            l.*,
            'override' as role,
            p.upline_id as earner_id,
            {{ var('override_rate_e4') }} as rate_e4
        from {{ lines }} as l
        inner join {{ ref('stg_reference__promoters') }} as p on l.attributed_promoter_id = p.promoter_id
        where p.upline_id is not null and {{ var('override_rate_e4') }} > 0
    ) as r
    left join {{ ref('stg_reference__promoters') }} as e on r.earner_id = e.promoter_id
{% endmacro %}
