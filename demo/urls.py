from django.urls import path

from demo.views import inbox_post

urlpatterns = [path("demo/inbox/<int:delivery_id>/", inbox_post, name="demo-inbox")]
