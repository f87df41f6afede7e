-- Every KPI of a focus area measures one of the programme's 17 initiatives, in its own area.
select c.kpi_id, c.area, c.initiative
from {{ ref('kpi_catalogue') }} as c
left join {{ ref('programme_initiatives') }} as i
  on i.name_en = c.initiative and i.area = c.area
where c.area != 'programme' and i.initiative_id is null
