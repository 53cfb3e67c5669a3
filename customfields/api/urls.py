from rest_framework.routers import DefaultRouter

from customfields.api.views import CustomFieldViewSet

router = DefaultRouter()
router.register("custom-fields", CustomFieldViewSet, basename="customfield")

urlpatterns = router.urls
