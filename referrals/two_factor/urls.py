from django.contrib import admin
from django.urls import path

from referrals.two_factor import views

app_name = "two_factor"
urlpatterns = [
    path("code/", views.code, name="code"),
    path("enrol/", views.enrol, name="enrol"),
    # The user's own page: behind the admin's login, like every admin page.
    path("", admin.site.admin_view(views.account), name="account"),
]
