-- Every KPI value of the health area, with names in Kazakh, Russian and English (see _marts.yml).
{{ config(materialized='view', persist_docs={'relation': true, 'columns': false}) }}
{{ area_mart('health') }}
