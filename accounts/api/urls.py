from django.urls import path

from accounts.api import views

ORG = "orgs/<str:org>/"
urlpatterns = [
    path("orgs/", views.OrganizationListView.as_view(), name="api-orgs"),
    path(ORG, views.OrganizationDetailView.as_view(), name="api-org"),
    path(ORG + "members/", views.MemberListView.as_view(), name="api-org-members"),
    path(ORG + "members/<str:username>/", views.MemberDetailView.as_view(), name="api-org-member"),
    path(ORG + "teams/", views.TeamListView.as_view(), name="api-teams"),
    path(ORG + "teams/<str:team>/", views.TeamDetailView.as_view(), name="api-team"),
    path(ORG + "teams/<str:team>/members/", views.TeamMemberListView.as_view(), name="api-team-members"),
    path(
        ORG + "teams/<str:team>/members/<str:username>/", views.TeamMemberDetailView.as_view(), name="api-team-member"
    ),
    path(ORG + "access-rules/", views.AccessRuleListView.as_view(), name="api-access-rules"),
    path(ORG + "access-rules/<int:rule_id>/", views.AccessRuleDetailView.as_view(), name="api-access-rule"),
    path(ORG + "group-mappings/", views.GroupMappingListView.as_view(), name="api-group-mappings"),
    path(ORG + "group-mappings/<int:mapping_id>/", views.GroupMappingDetailView.as_view(), name="api-group-mapping"),
    path(ORG + "robots/", views.RobotListView.as_view(), name="api-robots"),
    path(ORG + "robots/<str:name>/", views.RobotDetailView.as_view(), name="api-robot"),
    path(ORG + "robots/<str:name>/rotate/", views.RobotRotateView.as_view(), name="api-robot-rotate"),
    path("access-tokens/", views.AccessTokenListView.as_view(), name="api-access-tokens"),
    path("access-tokens/<int:token_id>/", views.AccessTokenDetailView.as_view(), name="api-access-token"),
    path("users/<str:username>/", views.UserProfileView.as_view(), name="api-user"),
    path("audit/", views.AuditListView.as_view(), name="api-audit"),
]
