from rest_framework.routers import DefaultRouter

from privacy.api.views import ErasureViewSet

router = DefaultRouter()
router.register("erasures", ErasureViewSet, basename="erasure")

urlpatterns = router.urls
